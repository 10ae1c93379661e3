package sketch

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// benchDurations are log-normal request durations around 20 ms.
func benchDurations(n int) []int64 {
	r := rand.New(rand.NewPCG(11, 12))
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(20_000 * math.Exp(r.NormFloat64()))
	}
	return out
}

func latencyOf(durations []int64) *Latency {
	l := NewLatency()
	for _, d := range durations {
		l.Add(d)
	}
	return l
}

func BenchmarkLatencyAdd(b *testing.B) {
	ds := benchDurations(1 << 16)
	l := latencyOf(ds) // bins allocated: the steady state of a busy endpoint
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		l.Add(ds[i&(len(ds)-1)])
	}
}

// BenchmarkLatencyMerge merges one minute's sketch (1k or 100k durations)
// into an hour's.
func BenchmarkLatencyMerge(b *testing.B) {
	for _, n := range []int{1_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			minute := latencyOf(benchDurations(n))
			hour := latencyOf(benchDurations(n))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				hour.Merge(minute)
			}
		})
	}
}

func BenchmarkLatencyMarshal(b *testing.B) {
	for _, n := range []int{1_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			l := latencyOf(benchDurations(n))
			buf, _ := l.AppendBinary(nil)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				buf, _ = l.AppendBinary(buf[:0])
			}
			b.ReportMetric(float64(len(buf)), "bytes")
		})
	}
}

func BenchmarkLatencyUnmarshal(b *testing.B) {
	for _, n := range []int{1_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			buf, _ := latencyOf(benchDurations(n)).MarshalBinary()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				var l Latency
				if err := l.UnmarshalBinary(buf); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(buf)), "bytes")
		})
	}
}

func BenchmarkLatencyQuantile(b *testing.B) {
	l := latencyOf(benchDurations(100_000))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		_ = l.Quantile(0.99)
	}
}

func distinctOf(n int) *Distinct {
	d := NewDistinct()
	for _, c := range clients(13, n) {
		d.Add(c)
	}
	return d
}

// BenchmarkDistinctAdd adds clients already seen (the common case: a busy
// endpoint's callers repeat) to a sparse and a dense sketch.
func BenchmarkDistinctAdd(b *testing.B) {
	for _, n := range []int{100, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			cs := clients(13, n)
			d := distinctOf(n)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				d.Add(cs[i%n])
			}
		})
	}
}

// BenchmarkDistinctMerge merges one minute's sketch into an hour's: sparse
// (100 clients) and dense (100k).
func BenchmarkDistinctMerge(b *testing.B) {
	for _, n := range []int{100, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			minute := distinctOf(n)
			hour := distinctOf(n)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				hour.Merge(minute)
			}
		})
	}
}

func BenchmarkDistinctMarshal(b *testing.B) {
	for _, n := range []int{10, 1_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			d := distinctOf(n)
			buf, _ := d.AppendBinary(nil)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				buf, _ = d.AppendBinary(buf[:0])
			}
			b.ReportMetric(float64(len(buf)), "bytes")
		})
	}
}

func BenchmarkDistinctUnmarshal(b *testing.B) {
	for _, n := range []int{10, 1_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			buf, _ := distinctOf(n).MarshalBinary()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				var d Distinct
				if err := d.UnmarshalBinary(buf); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(buf)), "bytes")
		})
	}
}

func BenchmarkDistinctEstimate(b *testing.B) {
	for _, n := range []int{100, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			d := distinctOf(n)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				_ = d.Estimate()
			}
		})
	}
}

package sketch

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// quantiles are the ones the endpoint answers show, and the extremes.
var quantiles = []float64{0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1}

// exactQuantile is the duration that Latency.Quantile estimates: rank
// ⌊q·(n−1)⌋ of the sorted durations.
func exactQuantile(sorted []int64, q float64) int64 {
	return sorted[int(q*float64(len(sorted)-1))]
}

// withinBound reports whether est is within RelativeAccuracy of the exact
// value (a float64's rounding aside); a zero must be exact.
func withinBound(est float64, exact int64) bool {
	if exact <= 0 {
		return est == 0
	}
	return math.Abs(est-float64(exact)) <= RelativeAccuracy*float64(exact)*(1+1e-9)
}

// checkQuantiles fails t for each quantile of l that is not within the
// bound of the exact quantile of durations.
func checkQuantiles(t *testing.T, l *Latency, durations []int64) {
	t.Helper()
	sorted := slices.Clone(durations)
	slices.Sort(sorted)
	for i, d := range sorted {
		sorted[i] = max(d, 0)
	}
	if got := l.Count(); got != uint64(len(durations)) {
		t.Errorf("Count() = %d, want %d", got, len(durations))
	}
	for _, q := range quantiles {
		exact := exactQuantile(sorted, q)
		if est := l.Quantile(q); !withinBound(est, exact) {
			t.Errorf("Quantile(%v) = %v, exact %d: relative error %.4f > %v", q, est, exact,
				math.Abs(est-float64(exact))/float64(exact), RelativeAccuracy)
		}
	}
}

// distributions of durations (µs) that a test feeds to a Latency.
func distributions(n int) map[string][]int64 {
	r := rand.New(rand.NewPCG(1, 2))
	gen := func(f func() int64) []int64 {
		out := make([]int64, n)
		for i := range out {
			out[i] = f()
		}
		return out
	}
	logNormal := func(median, sigma float64) func() int64 {
		return func() int64 { return int64(median * math.Exp(sigma*r.NormFloat64())) }
	}
	return map[string][]int64{
		"uniform 1µs-1s":         gen(func() int64 { return 1 + r.Int64N(1_000_000) }),
		"log-normal median 20ms": gen(logNormal(20_000, 1)),
		// A long tail: a Pareto with α = 1.1 over 100 µs (p99 ≈ 6.5 s).
		"pareto long tail": gen(func() int64 { return int64(100 / math.Pow(1-r.Float64(), 1/1.1)) }),
		"constant 4200µs":  gen(func() int64 { return 4200 }),
		"30% zeros":        gen(func() int64 { return map[bool]int64{true: 0, false: logNormal(500, 2)()}[r.Float64() < 0.3] }),
		"all zeros":        gen(func() int64 { return 0 }),
		"1µs to 1 day": gen(func() int64 {
			return int64(math.Exp(r.Float64() * math.Log(86_400e6)))
		}),
		"bimodal cache hit/miss": gen(func() int64 {
			if r.Float64() < 0.9 {
				return logNormal(80, 0.3)()
			}
			return logNormal(250_000, 0.5)()
		}),
	}
}

func TestLatencyQuantilesWithinRelativeAccuracy(t *testing.T) {
	for name, durations := range distributions(200_000) {
		t.Run(name, func(t *testing.T) {
			var l Latency
			for _, d := range durations {
				l.Add(d)
			}
			checkQuantiles(t, &l, durations)
		})
	}
}

// TestLatencyBoundIsTight checks the test's own yardstick: a bound ten times
// tighter than the stated one fails for a spread of durations, so the
// accuracy test above would catch a sketch that is off.
func TestLatencyBoundIsTight(t *testing.T) {
	durations := distributions(10_000)["uniform 1µs-1s"]
	var l Latency
	for _, d := range durations {
		l.Add(d)
	}
	sorted := slices.Sorted(slices.Values(durations))
	worst := 0.0
	for q := 0.0; q <= 1; q += 0.001 {
		exact := float64(exactQuantile(sorted, q))
		worst = max(worst, math.Abs(l.Quantile(q)-exact)/exact)
	}
	if worst < RelativeAccuracy/10 || worst > RelativeAccuracy {
		t.Errorf("worst relative error %.5f, want in [%v, %v]", worst, RelativeAccuracy/10, RelativeAccuracy)
	}
}

func TestLatencyZerosCount(t *testing.T) {
	var l Latency
	l.Add(0)
	if l.Count() != 1 || l.Quantile(0.5) != 0 || l.Quantile(1) != 0 {
		t.Fatalf("one 0 µs request: Count %d, p50 %v, max %v; want 1, 0, 0", l.Count(), l.Quantile(0.5), l.Quantile(1))
	}
	l.Add(-5) // a clock step: counted as 0
	l.Add(1000)
	if l.Count() != 3 {
		t.Errorf("Count() = %d, want 3", l.Count())
	}
	if l.Quantile(0.5) != 0 {
		t.Errorf("p50 of {0, -5→0, 1000} = %v, want 0", l.Quantile(0.5))
	}
	if p := l.Quantile(1); !withinBound(p, 1000) {
		t.Errorf("max = %v, want 1000 ± 1 %%", p)
	}
}

func TestLatencyEmptyAndOutOfRangeQuantiles(t *testing.T) {
	var l Latency
	if l.Count() != 0 || l.Quantile(0.99) != 0 {
		t.Errorf("empty: Count %d, p99 %v; want 0, 0", l.Count(), l.Quantile(0.99))
	}
	var nilLatency *Latency
	if nilLatency.Count() != 0 || nilLatency.Quantile(0.5) != 0 {
		t.Error("a nil *Latency is not empty")
	}
	if b, err := nilLatency.MarshalBinary(); err != nil || !bytes.Equal(b, encode(t, NewLatency())) {
		t.Errorf("a nil *Latency encodes as %x, %v; want an empty sketch's encoding", b, err)
	}
	l.Add(10)
	l.Add(1000)
	if l.Quantile(-1) != l.Quantile(0) || l.Quantile(math.NaN()) != l.Quantile(0) || l.Quantile(2) != l.Quantile(1) {
		t.Errorf("q outside [0, 1] is not clamped: %v %v %v", l.Quantile(-1), l.Quantile(math.NaN()), l.Quantile(2))
	}
}

// minuteSketches splits durations into n per-minute sketches, in order,
// as the windowed buckets would hold them.
func minuteSketches(durations []int64, n int) []*Latency {
	minutes := make([]*Latency, n)
	for i := range minutes {
		minutes[i] = NewLatency()
	}
	for i, d := range durations {
		minutes[i*n/len(durations)].Add(d)
	}
	return minutes
}

func encode(t testing.TB, m interface{ MarshalBinary() ([]byte, error) }) []byte {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLatencyMergeOfMinutesIsTheWholeSketch(t *testing.T) {
	for name, durations := range distributions(60_000) {
		t.Run(name, func(t *testing.T) {
			var whole Latency
			for _, d := range durations {
				whole.Add(d)
			}
			minutes := minuteSketches(durations, 60)
			// An hour from its minutes, in order.
			var hour Latency
			for _, m := range minutes {
				hour.Merge(m)
			}
			checkQuantiles(t, &hour, durations)
			for _, q := range quantiles {
				if hour.Quantile(q) != whole.Quantile(q) {
					t.Errorf("Quantile(%v): merged %v, one sketch %v", q, hour.Quantile(q), whole.Quantile(q))
				}
			}
			want := encode(t, &whole)
			if got := encode(t, &hour); !bytes.Equal(got, want) {
				t.Errorf("merged minutes encode differently from one sketch of all durations")
			}

			// In any order, and as a tree (quarters of an hour, then the hour).
			r := rand.New(rand.NewPCG(3, 4))
			for range 5 {
				perm := r.Perm(len(minutes))
				var shuffled Latency
				for _, i := range perm {
					shuffled.Merge(minutes[i])
				}
				if got := encode(t, &shuffled); !bytes.Equal(got, want) {
					t.Fatalf("merging in order %v gives another sketch", perm)
				}
			}
			var tree Latency
			for q := 3; q >= 0; q-- {
				var quarter Latency
				for _, m := range minutes[q*15 : (q+1)*15] {
					quarter.Merge(m)
				}
				tree.Merge(&quarter)
			}
			if got := encode(t, &tree); !bytes.Equal(got, want) {
				t.Error("merging quarters of the hour gives another sketch")
			}
			// Merging leaves the merged sketch alone.
			if minutes[0].Count() != uint64(len(durations)/60) {
				t.Errorf("a merged minute has %d durations, want %d", minutes[0].Count(), len(durations)/60)
			}
		})
	}
}

func TestLatencyMergeNilEmptyAndSelf(t *testing.T) {
	var l Latency
	l.Merge(nil)
	l.Merge(&Latency{})
	l.Merge(NewLatency())
	if l.Count() != 0 {
		t.Fatalf("merging nothing counts %d", l.Count())
	}
	l.Add(100)
	l.Merge(&l)
	if l.Count() != 2 || !withinBound(l.Quantile(0), 100) {
		t.Errorf("a sketch merged with itself: Count %d, min %v; want 2, 100", l.Count(), l.Quantile(0))
	}
	var empty Latency
	empty.Merge(&l)
	if empty.Count() != 2 {
		t.Errorf("the zero value merged with a sketch counts %d, want 2", empty.Count())
	}
}

// TestLatencyBoundedUnderAdversarialInput feeds durations over an int64's
// whole range: the sketch stays within MaxBins, and the quantiles above the
// collapse floor (max/γ^MaxBins) keep the bound.
func TestLatencyBoundedUnderAdversarialInput(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	durations := make([]int64, 0, 300_000)
	for e := range 63 {
		durations = append(durations, 1<<e, 1<<e+1, 3<<e>>1)
	}
	durations = append(durations, math.MaxInt64, 1)
	for len(durations) < cap(durations) {
		durations = append(durations, int64(math.Exp(r.Float64()*math.Log(math.MaxInt64))))
	}
	var l Latency
	for _, d := range durations {
		l.Add(d)
	}
	pos := l.sk.GetPositiveValueStore()
	lo, _ := pos.MinIndex()
	hi, _ := pos.MaxIndex()
	if bins := hi - lo + 1; bins > MaxBins {
		t.Errorf("%d bins, want at most %d", bins, MaxBins)
	}
	b := encode(t, &l)
	// A varint count per bin: at most 3 bytes for counts below 2^14.
	if len(b) > 3*MaxBins+16 {
		t.Errorf("encoded in %d bytes, want at most %d", len(b), 3*MaxBins+16)
	}
	t.Logf("durations 1 µs .. 2^63 µs: %d bins, encoded %d bytes", hi-lo+1, len(b))

	floor := math.Pow((1+RelativeAccuracy)/(1-RelativeAccuracy), float64(maxLatencyIndex-MaxBins+1))
	sorted := slices.Sorted(slices.Values(durations))
	for _, q := range quantiles {
		exact := exactQuantile(sorted, q)
		est := l.Quantile(q)
		switch {
		case float64(exact) >= floor:
			if !withinBound(est, exact) {
				t.Errorf("Quantile(%v) = %v, exact %d: above the floor %.0f µs, want within 1 %%", q, est, exact, floor)
			}
		case est < float64(exact) || est > floor*(1+RelativeAccuracy)*(1+1e-9):
			t.Errorf("Quantile(%v) = %v, exact %d: below the floor, want between it and the floor %.0f µs", q, est, exact, floor)
		}
	}
	if floor < 10 || floor > 20 {
		t.Errorf("collapse floor for an int64's range is %.1f µs; the documented figure is about 15 µs", floor)
	}
}

// TestLatencyDayNeverCollapses: durations from 1 µs to a day fit the bins,
// so even the lowest quantiles keep the bound.
func TestLatencyDayNeverCollapses(t *testing.T) {
	var l Latency
	l.Add(1)
	l.Add(86_400e6)
	for range 1000 {
		l.Add(1)
	}
	if got := l.Quantile(0.5); got != latencyMapping.Value(minLatencyIndex) || !withinBound(got, 1) {
		t.Errorf("p50 of mostly 1 µs with a 1-day outlier = %v, want 1 ± 1 %%", got)
	}
}

func TestLatencyRoundTrip(t *testing.T) {
	cases := distributions(20_000)
	cases["empty"] = nil
	cases["one"] = []int64{1}
	cases["max"] = []int64{math.MaxInt64, 0}
	for name, durations := range cases {
		t.Run(name, func(t *testing.T) {
			var l Latency
			for _, d := range durations {
				l.Add(d)
			}
			b := encode(t, &l)
			var got Latency
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatalf("UnmarshalBinary(MarshalBinary()) = %v", err)
			}
			if got.Count() != l.Count() {
				t.Errorf("Count %d, want %d", got.Count(), l.Count())
			}
			for _, q := range quantiles {
				if got.Quantile(q) != l.Quantile(q) {
					t.Errorf("Quantile(%v) = %v, want %v", q, got.Quantile(q), l.Quantile(q))
				}
			}
			if again := encode(t, &got); !bytes.Equal(again, b) {
				t.Error("re-encoding a decoded sketch gives other bytes")
			}
			// A decoded sketch merges and adds like any other.
			got.Merge(&l)
			got.Add(7)
			if got.Count() != 2*l.Count()+1 {
				t.Errorf("decoded, merged and added: Count %d, want %d", got.Count(), 2*l.Count()+1)
			}
			if app, _ := l.AppendBinary([]byte("prefix")); !bytes.Equal(app, append([]byte("prefix"), b...)) {
				t.Error("AppendBinary does not append MarshalBinary's bytes")
			}
		})
	}
}

func TestLatencyUnmarshalRejectsGarbage(t *testing.T) {
	var valid Latency
	valid.Add(0)
	for d := range int64(100) {
		valid.Add(d * d * 100)
	}
	good := encode(t, &valid)
	other, _ := mustSketchOfAccuracy(t, 0.02)

	cases := []struct {
		name string
		b    []byte
		want string // in the error
	}{
		{"empty", nil, "empty"},
		{"unknown format", []byte{2}, "format 2"},
		{"format 0", append([]byte{0}, good[1:]...), "format 0"},
		{"truncated", good[:len(good)-1], "EOF"},
		{"unknown flag", []byte{latencyFormat, 0xfc}, "unknown"},
		{"index above an int64's durations", binsBytes(false, bin{int64(maxLatencyIndex) + 1, 1}), "outside"},
		{"index 2^40", binsBytes(false, bin{1 << 40, 1}), "outside"},
		{"negative index", binsBytes(false, bin{-1, 1}), "outside"},
		{"fractional count", binsBytes(false, bin{5, 0.5}), "whole number"},
		{"NaN count", binsBytes(false, bin{5, math.NaN()}), "whole number"},
		{"negative count", binsBytes(false, bin{5, -3}), "whole number"},
		{"infinite count", binsBytes(false, bin{5, math.Inf(1)}), "whole number"},
		{"count above 2^52", binsBytes(false, bin{5, 1 << 60}), "whole number"},
		{"counts adding up above 2^52", binsBytes(false, bin{5, 1 << 51}, bin{6, 1 << 51}, bin{7, 1}), "2^52"},
		{"negative zero count", zeroBytes(-1), "zero bin"},
		{"zeros and bins above 2^52", append(zeroBytes(1<<52), binsBytes(false, bin{5, 1})[1:]...), "2^52"},
		{"negative duration", binsBytes(true, bin{5, 1}), "outside"},
		// Bins at ±2^62 would overflow the collapsing store's index arithmetic
		// (the library alone panics on these bytes).
		{"index overflow", binsBytes(false, bin{1 << 62, 1}, bin{-1 << 62, 1}), "outside"},
		{"another accuracy", other, "mapping"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := encode(t, &valid)
			err := valid.UnmarshalBinary(c.b)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("UnmarshalBinary(%x) = %v, want ErrMalformed about %q", c.b, err, c.want)
			}
			if after := encode(t, &valid); !bytes.Equal(after, before) {
				t.Error("a failed UnmarshalBinary changed the sketch")
			}
		})
	}
}

// TestLatencyEncodedSize measures the table value of a Latency: about one
// byte per occupied bin, and the bins grow with the spread of the durations
// (log-normal, median 20 ms), not with their number beyond what fills them.
func TestLatencyEncodedSize(t *testing.T) {
	for _, c := range []struct {
		n     int
		sigma float64
		limit int
	}{
		{1_000, 0.5, 300}, {1_000, 1, 500}, {1_000, 2, 900},
		{1_000_000, 0.5, 700}, {1_000_000, 1, 1300}, {1_000_000, 2, 2400},
	} {
		r := rand.New(rand.NewPCG(1, 1))
		var l Latency
		for range c.n {
			l.Add(int64(20_000 * math.Exp(c.sigma*r.NormFloat64())))
		}
		b := encode(t, &l)
		t.Logf("%7d durations, log-normal σ=%.1f: %4d bytes", c.n, c.sigma, len(b))
		if len(b) > c.limit {
			t.Errorf("%d durations, σ=%v: %d bytes, want at most %d", c.n, c.sigma, len(b), c.limit)
		}
	}
	if b := encode(t, NewLatency()); len(b) != 1 {
		t.Errorf("an empty Latency encodes in %d bytes, want 1", len(b))
	}
}

// A short-lived Latency encodes, merges and answers as a capped one.
func TestShortLivedLatencyIsALatency(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	capped, short, merged := NewLatency(), NewShortLivedLatency(), NewLatency()
	for range 5000 {
		d := int64(rng.ExpFloat64() * 20000)
		capped.Add(d)
		short.Add(d)
	}
	short.Add(0)
	capped.Add(0)
	merged.Merge(short)
	b, _ := short.MarshalBinary() // its stores encode otherwise, the bins alike
	var back Latency
	if err := back.UnmarshalBinary(b); err != nil || back.Count() != capped.Count() {
		t.Fatalf("decoded %d durations (%v), want %d", back.Count(), err, capped.Count())
	}
	for _, q := range []float64{0, 0.5, 0.9, 0.99, 1} {
		x := capped.Quantile(q)
		if y, z, w := short.Quantile(q), merged.Quantile(q), back.Quantile(q); x != y || x != z || x != w {
			t.Errorf("q=%v: capped %v, short-lived %v, merged %v, decoded %v", q, x, y, z, w)
		}
	}
}

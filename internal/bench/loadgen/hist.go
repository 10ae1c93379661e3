package loadgen

import (
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram records durations in microseconds, 1 µs to 10 min, with three
// significant digits (values are exact to 0.1%).
type Histogram struct{ h *hdrhistogram.Histogram }

const histMaxMicros = int64(10 * time.Minute / time.Microsecond)

// NewHistogram makes an empty histogram.
func NewHistogram() *Histogram {
	return &Histogram{hdrhistogram.New(1, histMaxMicros, 3)}
}

// Record adds one duration; negative ones count as 0 and longer ones as the maximum.
func (h *Histogram) Record(d time.Duration) {
	us := d.Microseconds()
	us = max(us, 0)
	us = min(us, histMaxMicros)
	_ = h.h.RecordValue(us)
}

// Merge adds every value of o.
func (h *Histogram) Merge(o *Histogram) { h.h.Merge(o.h) }

// Count is the number of values recorded.
func (h *Histogram) Count() int64 { return h.h.TotalCount() }

// Percentile is the value at p (0–100): p percent of the values are at most it.
func (h *Histogram) Percentile(p float64) time.Duration {
	return time.Duration(h.h.ValueAtPercentile(p)) * time.Microsecond
}

// Summary is the percentiles of a histogram, in milliseconds.
type Summary struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Summary computes the reported percentiles.
func (h *Histogram) Summary() Summary {
	if h.Count() == 0 {
		return Summary{}
	}
	return Summary{
		Count: h.Count(),
		Mean:  h.h.Mean() / 1000,
		P50:   ms(h.Percentile(50)),
		P90:   ms(h.Percentile(90)),
		P99:   ms(h.Percentile(99)),
		P999:  ms(h.Percentile(99.9)),
		Max:   ms(time.Duration(h.h.Max()) * time.Microsecond),
	}
}

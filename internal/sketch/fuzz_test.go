package sketch

import (
	"bytes"
	"math"
	"testing"
)

// FuzzLatencyUnmarshal: whatever the bytes, UnmarshalBinary returns an error
// or a sketch that answers sensibly, merges, and encodes back to a sketch
// that answers the same.
func FuzzLatencyUnmarshal(f *testing.F) {
	var l Latency
	f.Add(encode(f, &l))
	for _, d := range []int64{0, 1, 15, 900, 20_000, 3_000_000, math.MaxInt64} {
		l.Add(d)
		f.Add(encode(f, &l))
	}
	f.Add(binsBytes(false, bin{1 << 62, 1}, bin{-1 << 62, 1}))
	f.Add(binsBytes(false, bin{3, 0.5}))
	f.Add(zeroBytes(2))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got Latency
		if err := got.UnmarshalBinary(data); err != nil {
			return
		}
		if got.Count() > maxCount {
			t.Fatalf("decoded %d durations, more than 2^52", got.Count())
		}
		qs := make([]float64, len(quantiles))
		for i, q := range quantiles {
			qs[i] = got.Quantile(q)
			if math.IsNaN(qs[i]) || qs[i] < 0 || qs[i] > math.MaxInt64*(1+RelativeAccuracy) || (i > 0 && qs[i] < qs[i-1]) {
				t.Fatalf("quantiles %v of a decoded sketch", qs[:i+1])
			}
		}
		b := encode(t, &got)
		var again Latency
		if err := again.UnmarshalBinary(b); err != nil {
			t.Fatalf("re-decoding a decoded sketch: %v", err)
		}
		if !bytes.Equal(encode(t, &again), b) {
			t.Fatal("re-encoding a decoded sketch gives other bytes")
		}
		for i, q := range quantiles {
			if again.Quantile(q) != qs[i] {
				t.Fatalf("Quantile(%v) = %v after a round trip, was %v", q, again.Quantile(q), qs[i])
			}
		}
		got.Merge(&l)
		got.Add(42)
		if got.Count() != again.Count()+l.Count()+1 {
			t.Fatalf("Count %d after merge and add, want %d", got.Count(), again.Count()+l.Count()+1)
		}
	})
}

// FuzzDistinctUnmarshal: whatever the bytes, UnmarshalBinary returns an
// error or a sketch that estimates, merges and encodes back.
func FuzzDistinctUnmarshal(f *testing.F) {
	var d Distinct
	f.Add(encode(f, &d))
	for _, n := range []int{1, 200, 30_000} {
		for _, c := range clients(8, n) {
			d.Add(c)
		}
		f.Add(encode(f, &d))
	}
	f.Add([]byte{1, DistinctPrecision, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var got Distinct
		if err := got.UnmarshalBinary(data); err != nil {
			return
		}
		est := got.Estimate()
		b := encode(t, &got)
		var again Distinct
		if err := again.UnmarshalBinary(b); err != nil {
			t.Fatalf("re-decoding a decoded sketch: %v", err)
		}
		if again.Estimate() != est {
			t.Fatalf("estimate %d after a round trip, was %d", again.Estimate(), est)
		}
		got.Merge(&d)
		got.Add("x")
		if got.Estimate() < d.Estimate()/2 {
			t.Fatalf("estimate %d after merging a sketch of %d", got.Estimate(), d.Estimate())
		}
	})
}

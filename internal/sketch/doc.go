// Package sketch holds the mergeable summaries that the per-endpoint group
// keeps in its table values and windowed buckets (README, "How it fits
// together"; issue 23): Latency, a DDSketch of request durations
// (github.com/DataDog/sketches-go), and Distinct, a HyperLogLog of client
// identities (github.com/axiomhq/hyperloglog).
//
// Both merge: the sketch of a union of buckets is the merge of their
// sketches, in any order, which is how hourly and daily answers are made
// from per-minute buckets. Both encode compactly for table values
// (MarshalBinary, AppendBinary) and decode with checks (UnmarshalBinary:
// corrupt bytes are an error wrapping ErrMalformed, never a panic).
//
// The bounds:
//   - Latency.Quantile is within RelativeAccuracy (1 %) of the exact
//     duration at that rank, for every duration of 1 µs or more below which
//     no more than MaxBins (2048) logarithmic bins were needed, which is
//     every duration when the largest is at most a day; zeros are exact.
//     Its memory is at most MaxBins·8 bytes, whatever it is fed.
//   - Distinct.Estimate has a standard error of DistinctStdError (0.81 %,
//     precision 14): 99.7 % of estimates are within 3 standard errors. It
//     is exact-ish while small (sparse form) and at most 16 KiB dense.
//
// Neither type is safe for concurrent use; both zero values are empty
// sketches ready to use.
package sketch

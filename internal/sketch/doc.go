// Package sketch holds the mergeable summaries that the per-endpoint group
// keeps in its table values and windowed buckets (README, "How it fits
// together"; issue 23): Latency, a DDSketch of request durations
// (github.com/DataDog/sketches-go), and Distinct, a HyperLogLog of client
// identities (github.com/axiomhq/hyperloglog).
//
// Both merge: the merge of the sketches of several buckets is the sketch of
// all their values, whatever the order, so hourly and daily answers are
// merges of per-minute buckets. Both encode compactly for table values
// (MarshalBinary, AppendBinary) and decode with checks: corrupt bytes are an
// error wrapping ErrMalformed, never a panic.
//
// Their bounds:
//   - Latency.Quantile is within RelativeAccuracy (1 %) of the exact
//     duration at that rank; zeros are exact. A Latency has at most MaxBins
//     (2048) bins, 16 KiB in memory, whatever it is fed; when its durations
//     span more than 2048 bins (a ratio of 6.2·10^17 between the largest and
//     the smallest, never for durations up to a day) the lowest quantiles
//     are overestimated, the high ones keep the bound. It encodes in about a
//     byte per occupied bin: 0.4 KB for 1,000 durations spread like real
//     latencies, 1.1 KB for a million.
//   - Distinct.Estimate has a standard error of DistinctStdError (0.81 %,
//     precision 14); 99.7 % of estimates are within three of it. It is
//     sparse and near exact while small (10 clients encode in 60 bytes) and
//     at most 16,392 bytes dense.
//
// Neither type is safe for concurrent use; their zero values are empty
// sketches ready to use.
package sketch

package sketch

import (
	"errors"
	"fmt"
	"math"

	"github.com/DataDog/sketches-go/ddsketch"
	enc "github.com/DataDog/sketches-go/ddsketch/encoding"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

const (
	// RelativeAccuracy is the bound of Latency.Quantile: the value returned
	// for a quantile is within 1 % of the exact duration at that rank (a p99
	// of 200 ms reads 198 to 202 ms, finer than network jitter). The
	// encoded size is inversely proportional to it (TestLatencyEncodedSize:
	// 412 bytes for 1,000 log-normal durations at 1 %, 226 at 2 %, 710 at
	// 0.5 %), and so is the range of durations that MaxBins covers: at 0.5 %
	// a one-day outlier would already collapse the bins below ~100 µs.
	RelativeAccuracy = 0.01

	// MaxBins bounds a Latency: at most 2048 bins of 8 bytes in memory,
	// whatever durations it is given. The bins are logarithmic (width
	// γ = 1.01/0.99), so 2048 of them span a ratio of γ^2048 ≈ 6.2·10^17
	// between the largest and the smallest duration kept within
	// RelativeAccuracy. When the durations span more, the lowest bins are
	// collapsed into one: quantiles below max/6.2·10^17 are overestimated
	// (reported as that floor). For durations of at most a day
	// (8.6·10^10 µs) that never happens (every duration of 1 µs or more is
	// within bounds); only an int64's whole range (9.2·10^18 µs) pushes the
	// floor up to about 15 µs. The high quantiles, which are the ones a
	// latency answer asks for, keep the bound in every case.
	MaxBins = 2048

	// latencyFormat is the first byte of Latency's encoding: the library's
	// encoding without the index mapping, for the logarithmic mapping of
	// RelativeAccuracy. Another accuracy or mapping needs another format byte.
	latencyFormat = 1

	// maxCount is the most durations a Latency holds (2^52, 475 years at
	// 300k/s): below it a float64 counts exactly, sums of two included;
	// decoding refuses more.
	maxCount = 1 << 52
)

// ErrMalformed is wrapped by every error of UnmarshalBinary of Latency and
// Distinct: the bytes are not an encoding of this package's sketches.
var ErrMalformed = errors.New("sketch: malformed encoding")

var (
	latencyMapping = mustLogMapping(RelativeAccuracy)
	// The bins that durations of 1 µs to math.MaxInt64 µs map to; a decoded
	// bin outside them is malformed (and could not be told apart from
	// an overflowed index).
	minLatencyIndex = latencyMapping.Index(1)
	maxLatencyIndex = latencyMapping.Index(math.MaxInt64)
)

func mustLogMapping(relativeAccuracy float64) *mapping.LogarithmicMapping {
	m, err := mapping.NewLogarithmicMapping(relativeAccuracy)
	if err != nil {
		panic(err)
	}
	return m
}

// Latency is a DDSketch of request durations in microseconds (the activity
// event's duration_us): quantiles within RelativeAccuracy, at most MaxBins
// bins. Its zero value is an empty sketch ready to use. A Latency is not
// safe for concurrent use.
type Latency struct {
	sk *ddsketch.DDSketch
}

// NewLatency returns an empty Latency (as its zero value is).
func NewLatency() *Latency {
	l := &Latency{}
	l.init()
	return l
}

// NewShortLivedLatency returns an empty Latency for a few durations held
// briefly, as the endpoints aggregator's partials are: its bins are
// buffered and paged instead of a dense array grown for every sketch,
// several times cheaper for the first adds. Its bins are not capped at
// MaxBins (the mapping spans ~2,200 bins for any durations, so it stays
// bounded); it encodes, merges and answers as NewLatency's, and decoding
// its encoding gives a capped Latency.
func NewShortLivedLatency() *Latency {
	return &Latency{sk: newLatencySketch(store.NewBufferedPaginatedStore(), store.NewBufferedPaginatedStore())}
}

func newLatencySketch(pos, neg store.Store) *ddsketch.DDSketch {
	return ddsketch.NewDDSketch(latencyMapping, pos, neg)
}

func (l *Latency) init() {
	if l.sk == nil {
		l.sk = newLatencySketch(store.NewCollapsingLowestDenseStore(MaxBins), store.NewCollapsingLowestDenseStore(MaxBins))
	}
}

// Add counts one request of durationUS microseconds. A duration of 0 (a
// request faster than the clock's resolution) counts in the zero bin, and so
// does a negative one (a clock step): every request is counted.
func (l *Latency) Add(durationUS int64) {
	l.init()
	v := float64(durationUS)
	if durationUS <= 0 {
		v = 0
	}
	// Every value from 0 to math.MaxInt64 is trackable by the logarithmic
	// mapping (it tracks up to ~10^308): Add cannot fail.
	if err := l.sk.Add(v); err != nil {
		panic(fmt.Sprintf("sketch: adding %d µs: %v", durationUS, err))
	}
}

// Merge adds other's durations to l: the merge of the sketches of two sets
// of durations is the sketch of their union, the same whatever the order of
// the merges. A nil or empty other changes nothing.
func (l *Latency) Merge(other *Latency) {
	if other == nil || other.sk == nil || other.sk.IsEmpty() {
		return
	}
	l.init()
	// Every Latency has latencyMapping, so the mappings always match.
	if err := l.sk.MergeWith(other.sk); err != nil {
		panic("sketch: " + err.Error())
	}
}

// Count is the number of durations added (and merged).
func (l *Latency) Count() uint64 {
	if l == nil || l.sk == nil {
		return 0
	}
	return uint64(l.sk.GetCount())
}

// Quantile returns the duration at quantile q (0.5 for p50, 0.99 for p99)
// in microseconds: within RelativeAccuracy of the exact value, which is the
// duration of rank ⌊q·(Count−1)⌋ (from 0) of the sorted durations. q is
// clamped to [0, 1]; an empty sketch answers 0.
func (l *Latency) Quantile(q float64) float64 {
	if l == nil || l.sk == nil || l.sk.IsEmpty() {
		return 0
	}
	switch {
	case q > 1:
		q = 1
	case !(q >= 0): // negative or NaN
		q = 0
	}
	v, err := l.sk.GetValueAtQuantile(q)
	if err != nil { // q is in range and the sketch is not empty
		panic("sketch: " + err.Error())
	}
	return v
}

// MarshalBinary encodes l compactly for a table value: a format byte, then
// DDSketch's own encoding (varint bin indexes and counts) without the index
// mapping, which the format byte implies. An empty sketch is 1 byte.
func (l *Latency) MarshalBinary() ([]byte, error) {
	return l.AppendBinary(nil)
}

// AppendBinary appends MarshalBinary's encoding to b.
func (l *Latency) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, latencyFormat)
	if l != nil && l.sk != nil {
		l.sk.Encode(&b, true)
	}
	return b, nil
}

// UnmarshalBinary replaces l with the sketch that data encodes. It checks
// what it decodes (format, bin indexes, counts, sign), so corrupt data
// returns an error wrapping ErrMalformed, never a panic or a sketch that
// answers nonsense; on error l is unchanged.
func (l *Latency) UnmarshalBinary(data []byte) error {
	if len(data) == 0 {
		return fmt.Errorf("%w: empty latency sketch", ErrMalformed)
	}
	if data[0] != latencyFormat {
		return fmt.Errorf("%w: latency sketch format %d, want %d", ErrMalformed, data[0], latencyFormat)
	}
	pos := &checkedStore{CollapsingLowestDenseStore: store.NewCollapsingLowestDenseStore(MaxBins), lo: minLatencyIndex, hi: maxLatencyIndex}
	// Durations are never negative: any negative bin is malformed.
	neg := &checkedStore{CollapsingLowestDenseStore: store.NewCollapsingLowestDenseStore(MaxBins), lo: 1, hi: 0}
	sk := newLatencySketch(pos, neg)
	if err := sk.DecodeAndMergeWith(data[1:]); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	for _, s := range []*checkedStore{pos, neg} {
		if s.err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, s.err)
		}
	}
	zeros := sk.GetZeroCount()
	if err := checkCount(zeros); err != nil {
		return fmt.Errorf("%w: zero bin: %v", ErrMalformed, err)
	}
	if zeros+pos.total > maxCount {
		return fmt.Errorf("%w: more than 2^52 durations", ErrMalformed)
	}
	// The decoded bins, in plain collapsing stores (the checking wrappers
	// would take Merge off its fast path).
	out := newLatencySketch(pos.CollapsingLowestDenseStore, neg.CollapsingLowestDenseStore)
	if zeros > 0 {
		if err := out.AddWithCount(0, zeros); err != nil {
			return fmt.Errorf("%w: zero bin: %v", ErrMalformed, err)
		}
	}
	l.sk = out
	return nil
}

func checkCount(c float64) error {
	if !(c >= 0) || c > maxCount || c != math.Trunc(c) {
		return fmt.Errorf("count %v is not a whole number from 0 to 2^52", c)
	}
	return nil
}

// checkedStore is the store that decoding fills: it refuses (and remembers)
// a bin outside [lo, hi] or a count that is not a whole number, before the
// collapsing store sees it; an index far out of range would overflow its
// arithmetic.
type checkedStore struct {
	*store.CollapsingLowestDenseStore
	lo, hi int
	total  float64
	err    error
}

func (s *checkedStore) Add(index int) { s.AddWithCount(index, 1) }

func (s *checkedStore) AddBin(bin store.Bin) { s.AddWithCount(bin.Index(), bin.Count()) }

func (s *checkedStore) AddWithCount(index int, count float64) {
	if s.err != nil {
		return
	}
	if err := checkCount(count); err != nil {
		s.err = fmt.Errorf("bin %d: %w", index, err)
		return
	}
	if count == 0 {
		return // dense encodings list empty bins
	}
	if index < s.lo || index > s.hi {
		s.err = fmt.Errorf("bin %d outside [%d, %d]", index, s.lo, s.hi)
		return
	}
	s.total += count
	if s.total > maxCount {
		s.err = errors.New("more than 2^52 durations")
		return
	}
	s.CollapsingLowestDenseStore.AddWithCount(index, count)
}

// DecodeAndMergeWith decodes bins through s's checks. DDSketch drops the
// error a store's decoding returns, so s keeps it too.
func (s *checkedStore) DecodeAndMergeWith(b *[]byte, mode enc.SubFlag) error {
	if err := store.DecodeAndMergeWith(s, b, mode); err != nil && s.err == nil {
		s.err = err
	}
	return s.err
}

package sketch

import (
	"testing"

	"github.com/DataDog/sketches-go/ddsketch"
	enc "github.com/DataDog/sketches-go/ddsketch/encoding"
)

// mustSketchOfAccuracy encodes, as a Latency would, a sketch of another
// relative accuracy with its mapping included.
func mustSketchOfAccuracy(t *testing.T, accuracy float64) ([]byte, *ddsketch.DDSketch) {
	t.Helper()
	sk, err := ddsketch.LogCollapsingLowestDenseDDSketch(accuracy, MaxBins)
	if err != nil {
		t.Fatal(err)
	}
	for d := range 100 {
		if err := sk.Add(float64(d * 1000)); err != nil {
			t.Fatal(err)
		}
	}
	b := []byte{latencyFormat}
	sk.Encode(&b, false)
	return b, sk
}

type bin struct {
	index int64
	count float64
}

// binsBytes is a Latency encoding, in the library's format, of the bins
// given, in the positive store or, if negative, the negative one: whatever
// their indexes and counts.
func binsBytes(negative bool, bins ...bin) []byte {
	t := enc.FlagTypePositiveStore
	if negative {
		t = enc.FlagTypeNegativeStore
	}
	b := []byte{latencyFormat}
	enc.EncodeFlag(&b, enc.NewFlag(t, enc.BinEncodingIndexDeltasAndCounts))
	enc.EncodeUvarint64(&b, uint64(len(bins)))
	prev := int64(0)
	for _, bn := range bins {
		enc.EncodeVarint64(&b, bn.index-prev)
		enc.EncodeVarfloat64(&b, bn.count)
		prev = bn.index
	}
	return b
}

// zeroBytes is a Latency encoding with a zero bin of count.
func zeroBytes(count float64) []byte {
	b := []byte{latencyFormat}
	enc.EncodeFlag(&b, enc.FlagZeroCountVarFloat)
	enc.EncodeVarfloat64(&b, count)
	return b
}

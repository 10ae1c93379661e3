package sketch

import (
	"fmt"
	"math"

	"github.com/axiomhq/hyperloglog"
	"github.com/dgryski/go-metro"
)

const (
	// DistinctPrecision is the HyperLogLog precision p of Distinct: 2^14
	// registers of one byte, 16 KiB when dense.
	DistinctPrecision = 14

	// denseDistinctSize is the encoded size of a dense Distinct: a 4-byte
	// header, a 4-byte register count and the registers.
	denseDistinctSize = 8 + 1<<DistinctPrecision
)

// DistinctStdError is the standard error of Distinct.Estimate relative to
// the true count, 1.04/√(2^DistinctPrecision) ≈ 0.81 %.
var DistinctStdError = 1.04 / math.Sqrt(1<<DistinctPrecision)

// Distinct is a HyperLogLog of client identities. It starts sparse (a
// sorted, delta-encoded list of hashes: a bucket of a few clients encodes
// in tens of bytes, and its estimate is near exact) and turns dense (2^14
// one-byte registers) when that list would be the larger. Its zero value is
// an empty sketch ready to use. A Distinct is not safe for concurrent use:
// even Estimate may compact its sparse form.
type Distinct struct {
	sk *hyperloglog.Sketch
}

// NewDistinct returns an empty Distinct (as its zero value is).
func NewDistinct() *Distinct {
	d := &Distinct{}
	d.init()
	return d
}

func (d *Distinct) init() {
	if d.sk == nil {
		d.sk = newDistinctSketch(true)
	}
}

func newDistinctSketch(sparse bool) *hyperloglog.Sketch {
	sk, err := hyperloglog.NewSketch(DistinctPrecision, sparse)
	if err != nil { // the precision is in the library's range
		panic("sketch: " + err.Error())
	}
	return sk
}

// Add counts client (an identity: the activity event's client).
func (d *Distinct) Add(client string) {
	d.init()
	d.sk.Insert([]byte(client))
}

// HashClient is the hash Add inserts for client: callers that add one
// client to several sketches, or dedupe clients first, hash it once and
// use AddHash.
func HashClient(client string) uint64 { return metro.Hash64Str(client, hashSeed) }

// hashSeed is the seed of the library's own hash (utils.go: metro, 1337).
const hashSeed = 1337

// AddHash counts the client whose HashClient is h, as Add does.
func (d *Distinct) AddHash(h uint64) {
	d.init()
	d.sk.InsertHash(h)
}

// Merge adds other's clients to d: the merge of the sketches of two sets of
// clients is the sketch of their union, the same whatever the order of the
// merges. A nil or empty other changes nothing.
func (d *Distinct) Merge(other *Distinct) {
	if other == nil || other.sk == nil {
		return
	}
	d.init()
	// Every Distinct has DistinctPrecision (UnmarshalBinary checks it).
	if err := d.sk.Merge(other.sk); err != nil {
		panic("sketch: " + err.Error())
	}
}

// Estimate is the estimated number of distinct clients added (and merged),
// within DistinctStdError of the true number for one standard error. It
// costs tens of nanoseconds while sparse but about half a millisecond when
// dense (the library computes 2^-r with math.Pow for each of the 2^14
// registers): estimate a closed bucket once and keep the number.
func (d *Distinct) Estimate() uint64 {
	if d == nil || d.sk == nil {
		return 0
	}
	return d.sk.Estimate()
}

// MarshalBinary encodes d in the library's format: a 4-byte header, then
// either the sparse list (tens of bytes for a few clients) or the 2^14
// registers (16,392 bytes). A sparse form that would encode larger than the
// dense one is turned dense first, for good: no encoding exceeds 16,392
// bytes.
func (d *Distinct) MarshalBinary() ([]byte, error) {
	return d.AppendBinary(nil)
}

// AppendBinary appends MarshalBinary's encoding to b.
func (d *Distinct) AppendBinary(b []byte) ([]byte, error) {
	if d == nil {
		d = &Distinct{}
	}
	d.init()
	n := len(b)
	out, err := d.sk.AppendBinary(b)
	if err != nil {
		return b, fmt.Errorf("sketch: encoding distinct: %w", err)
	}
	if len(out)-n <= denseDistinctSize {
		return out, nil
	}
	// Sparse, and larger than dense: merging into a dense sketch turns it
	// dense (the library keeps a sketch sparse until its list has 2^14
	// entries, about twice the dense size).
	dense := newDistinctSketch(false)
	if err := dense.Merge(d.sk); err != nil {
		panic("sketch: " + err.Error())
	}
	d.sk = dense
	out, err = d.sk.AppendBinary(out[:n])
	if err != nil {
		return b, fmt.Errorf("sketch: encoding distinct: %w", err)
	}
	return out, nil
}

// UnmarshalBinary replaces d with the sketch that data encodes. Corrupt data,
// or a sketch of another precision, returns an error wrapping ErrMalformed
// (the library checks every length, key and register); on error d is
// unchanged.
func (d *Distinct) UnmarshalBinary(data []byte) error {
	if len(data) >= 2 && data[1] != DistinctPrecision {
		return fmt.Errorf("%w: distinct sketch of precision %d, want %d", ErrMalformed, data[1], DistinctPrecision)
	}
	sk := &hyperloglog.Sketch{}
	if err := sk.UnmarshalBinary(data); err != nil {
		return fmt.Errorf("%w: distinct: %v", ErrMalformed, err)
	}
	d.sk = sk
	return nil
}

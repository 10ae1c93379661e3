package sketch

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
)

// clientName is the n-th client identity of a test: what the activity
// event's client looks like (an address, or an API key's name).
func clientName(seed, n int) string {
	if n%3 == 0 {
		return "key-" + strconv.Itoa(seed) + "-" + strconv.Itoa(n)
	}
	return "10." + strconv.Itoa(seed) + "." + strconv.Itoa(n>>8) + "." + strconv.Itoa(n&0xff)
}

func clients(seed, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = clientName(seed, i)
	}
	return out
}

// cardinalities the accuracy tests check, over the sparse form, the switch
// to dense and the dense form.
var cardinalities = []int{1, 10, 100, 1_000, 5_000, 10_000, 20_000, 100_000, 1_000_000}

func TestDistinctEstimateWithinThreeStandardErrors(t *testing.T) {
	if DistinctStdError < 0.0080 || DistinctStdError > 0.0082 {
		t.Fatalf("DistinctStdError = %v, want 1.04/128 ≈ 0.81 %%", DistinctStdError)
	}
	for _, n := range cardinalities {
		for seed := range 3 {
			if n >= 1_000_000 && seed > 0 {
				break // one million-client run is enough
			}
			cs := clients(seed, n)
			var d Distinct
			for _, c := range cs {
				d.Add(c)
				d.Add(c) // repeats do not count
			}
			est := d.Estimate()
			rel := math.Abs(float64(est)-float64(n)) / float64(n)
			if rel > 3*DistinctStdError {
				t.Errorf("%d clients (seed %d): estimate %d, off by %.2f %%, more than 3 standard errors (%.2f %%)",
					n, seed, est, 100*rel, 300*DistinctStdError)
			}
			if seed == 0 {
				t.Logf("%7d clients: estimate %7d (%+.2f %%)", n, est, 100*(float64(est)-float64(n))/float64(n))
			}
		}
	}
}

// TestDistinctSmallSetsAreExact: the sparse form hashes to 25 bits, so a
// bucket of a few clients counts them exactly.
func TestDistinctSmallSetsAreExact(t *testing.T) {
	for _, n := range []int{0, 1, 2, 7, 50} {
		var d Distinct
		for _, c := range clients(9, n) {
			d.Add(c)
		}
		if got := d.Estimate(); got != uint64(n) {
			t.Errorf("%d clients: estimate %d", n, got)
		}
	}
	var nilDistinct *Distinct
	if nilDistinct.Estimate() != 0 {
		t.Error("a nil *Distinct is not empty")
	}
	if b, err := nilDistinct.MarshalBinary(); err != nil || !bytes.Equal(b, encode(t, NewDistinct())) {
		t.Errorf("a nil *Distinct encodes as %x, %v; want an empty sketch's encoding", b, err)
	}
}

func TestDistinctMergeOfMinutesIsTheWholeSketch(t *testing.T) {
	for _, n := range []int{30, 3_000, 200_000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			cs := clients(4, n)
			r := rand.New(rand.NewPCG(7, 8))
			// Each client calls in about 3 of the 60 minutes: the minutes
			// overlap, as a client's calls spread over an hour.
			minutes := make([]*Distinct, 60)
			for i := range minutes {
				minutes[i] = NewDistinct()
			}
			var whole Distinct
			for _, c := range cs {
				for range 3 {
					minutes[r.IntN(60)].Add(c)
				}
				whole.Add(c)
			}
			want := whole.Estimate()
			if rel := math.Abs(float64(want)-float64(n)) / float64(n); rel > 3*DistinctStdError {
				t.Fatalf("one sketch: estimate %d of %d", want, n)
			}
			for try := range 5 {
				var hour Distinct
				order := r.Perm(60)
				if try == 0 {
					for i := range order {
						order[i] = i
					}
				}
				for _, i := range order {
					hour.Merge(minutes[i])
				}
				if got := hour.Estimate(); got != want {
					t.Errorf("merged in order %v: estimate %d, one sketch of all clients %d", order[:5], got, want)
				}
			}
			// As a tree: quarters of the hour, then the hour; and through
			// encodings, as hourly answers from stored buckets are.
			var tree Distinct
			for q := range 4 {
				var quarter Distinct
				for _, m := range minutes[q*15 : (q+1)*15] {
					var decoded Distinct
					if err := decoded.UnmarshalBinary(encode(t, m)); err != nil {
						t.Fatal(err)
					}
					quarter.Merge(&decoded)
				}
				tree.Merge(&quarter)
			}
			if got := tree.Estimate(); got != want {
				t.Errorf("merged as a tree through encodings: estimate %d, one sketch %d", got, want)
			}
		})
	}
}

func TestDistinctMergeNilEmptyAndSelf(t *testing.T) {
	var d Distinct
	d.Merge(nil)
	d.Merge(&Distinct{})
	d.Merge(NewDistinct())
	if d.Estimate() != 0 {
		t.Fatalf("merging nothing estimates %d", d.Estimate())
	}
	d.Add("a")
	d.Add("b")
	d.Merge(&d)
	if d.Estimate() != 2 {
		t.Errorf("a sketch merged with itself estimates %d, want 2", d.Estimate())
	}
}

// TestDistinctEncodedSize: a bucket of a few clients stays small, and no
// encoding is larger than the dense one.
func TestDistinctEncodedSize(t *testing.T) {
	limits := map[int]int{0: 20, 10: 64, 100: 420}
	var d Distinct
	added := 0
	for _, n := range []int{0, 10, 100, 1_000, 2_000, 4_000, 6_000, 8_000, 12_000, 16_000, 20_000, 100_000} {
		for ; added < n; added++ {
			d.Add(clientName(5, added))
		}
		b := encode(t, &d)
		t.Logf("%6d clients: %5d bytes", n, len(b))
		if len(b) > denseDistinctSize {
			t.Errorf("%d clients: %d bytes, more than dense (%d)", n, len(b), denseDistinctSize)
		}
		if limit, ok := limits[n]; ok && len(b) > limit {
			t.Errorf("%d clients: %d bytes, want at most %d", n, len(b), limit)
		}
		var back Distinct
		if err := back.UnmarshalBinary(b); err != nil {
			t.Fatalf("%d clients: UnmarshalBinary(MarshalBinary()) = %v", n, err)
		}
		if back.Estimate() != d.Estimate() {
			t.Errorf("%d clients: decoded estimate %d, want %d", n, back.Estimate(), d.Estimate())
		}
	}
	if b := encode(t, &d); len(b) != denseDistinctSize {
		t.Errorf("100k clients: %d bytes, want dense (%d)", len(b), denseDistinctSize)
	}
}

func TestDistinctRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 300, 50_000} {
		var d Distinct
		for _, c := range clients(6, n) {
			d.Add(c)
		}
		b := encode(t, &d)
		var got Distinct
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("%d clients: %v", n, err)
		}
		if got.Estimate() != d.Estimate() {
			t.Errorf("%d clients: decoded estimate %d, want %d", n, got.Estimate(), d.Estimate())
		}
		// A decoded sketch adds and merges like any other.
		got.Add("someone new")
		got.Merge(&d)
		if want := d.Estimate() + 1; got.Estimate() < want-want/50 || got.Estimate() > want+want/50+1 {
			t.Errorf("%d clients: decoded, added and merged: estimate %d, want about %d", n, got.Estimate(), want)
		}
		if app, _ := d.AppendBinary([]byte("prefix")); !bytes.Equal(app[6:], encode(t, &d)) || string(app[:6]) != "prefix" {
			t.Errorf("%d clients: AppendBinary does not append MarshalBinary's bytes", n)
		}
	}
}

func TestDistinctUnmarshalRejectsGarbage(t *testing.T) {
	var valid Distinct
	for _, c := range clients(7, 40) {
		valid.Add(c)
	}
	good := encode(t, &valid)
	var dense Distinct
	for _, c := range clients(7, 30_000) {
		dense.Add(c)
	}
	goodDense := encode(t, &dense)
	p16 := func() []byte {
		b := slicesClone(good)
		b[1] = 16
		return b
	}()
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"one byte", []byte{2}, "too short"},
		{"unknown version", append([]byte{9}, good[1:]...), "version"},
		{"another precision", p16, "precision 16"},
		{"precision 0", []byte{2, 0, 0, 1}, "precision 0"},
		{"truncated sparse", good[:len(good)-1], ""},
		{"truncated dense", goodDense[:len(goodDense)-1], ""},
		{"trailing byte", append(slicesClone(good), 0), ""},
		{"register too large", append(slicesClone(goodDense[:len(goodDense)-1]), 0xff), "invalid"},
		{"bad representation flag", []byte{2, DistinctPrecision, 0, 7, 0, 0, 0, 0}, "invalid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := valid.Estimate()
			err := valid.UnmarshalBinary(c.b)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("UnmarshalBinary(%.40x) = %v, want ErrMalformed about %q", c.b, err, c.want)
			}
			if valid.Estimate() != before {
				t.Error("a failed UnmarshalBinary changed the sketch")
			}
		})
	}
}

func slicesClone(b []byte) []byte { return append([]byte(nil), b...) }

// AddHash of HashClient is Add: the same sketch, byte for byte.
func TestDistinctAddHashIsAdd(t *testing.T) {
	a, b := NewDistinct(), NewDistinct()
	for i := range 20000 {
		c := fmt.Sprintf("client-%d", i%7000)
		a.Add(c)
		b.AddHash(HashClient(c))
	}
	ea, _ := a.MarshalBinary()
	eb, _ := b.MarshalBinary()
	if !bytes.Equal(ea, eb) || a.Estimate() != b.Estimate() {
		t.Fatalf("Add and AddHash differ: estimates %d and %d", a.Estimate(), b.Estimate())
	}
}

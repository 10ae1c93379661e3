package codecs

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs/activitypb"
)

func TestUsageTotalsMatchesFullDecode(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 2000 {
		u := &activitypb.ClientUsage{Client: fmt.Sprintf("c%d", i), Total: rng.Uint64() >> rng.IntN(64)}
		if rng.IntN(4) > 0 {
			u.LastSeen = timestamppb.New(time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)))
			u.FirstSeen = timestamppb.New(time.Unix(rng.Int64N(4e9), 0))
		}
		if rng.IntN(2) == 0 {
			u.Endpoints = map[string]*activitypb.EndpointUsage{"GET /x": {Count: 3, LastSeen: timestamppb.Now()}}
			u.AppliedOffsets = map[int32]int64{0: 12, 3: rng.Int64()}
		}
		b, err := u.MarshalVT()
		if err != nil {
			t.Fatal(err)
		}
		total, seen, err := UsageTotals(b)
		var want int64
		if u.LastSeen != nil {
			want = u.LastSeen.AsTime().UnixNano()
		}
		if err != nil || total != u.Total || seen != want {
			t.Fatalf("%v: parsed total %d seen %d (%v), want %d %d", u, total, seen, err, u.Total, want)
		}
	}
	for _, bad := range [][]byte{{0x18}, {0x2a, 0x05, 0x08}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}} {
		if _, _, err := UsageTotals(bad); err == nil {
			t.Errorf("UsageTotals(%x) accepted a malformed message", bad)
		}
	}
}

func FuzzParseTotals(f *testing.F) {
	u := &activitypb.ClientUsage{Client: "c", Total: 7, LastSeen: timestamppb.Now(),
		Endpoints: map[string]*activitypb.EndpointUsage{"GET /x": {Count: 7}}}
	b, _ := u.MarshalVT()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		total, seen, err := UsageTotals(b)
		var full activitypb.ClientUsage
		if full.UnmarshalVT(b) != nil || err != nil {
			return // garbage either way; only no panic is required
		}
		var want int64
		if full.LastSeen != nil && (full.LastSeen.Seconds != 0 || full.LastSeen.Nanos != 0) {
			want = full.LastSeen.Seconds*1e9 + int64(full.LastSeen.Nanos)
		}
		if total != full.Total || seen != want {
			t.Errorf("parsed %d %d, full decode %d %d", total, seen, full.Total, want)
		}
	})
}

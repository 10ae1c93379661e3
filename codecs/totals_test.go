package codecs

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
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

// byServiceOfDoc is what UsageByService must find: per service with calls,
// the calls and last call of UsageDoc.OfService.
func byServiceOfDoc(u *activitypb.ClientUsage) map[string]ServiceCalls {
	want := map[string]ServiceCalls{}
	doc := UsageDocOf(u)
	maps.DeleteFunc(doc.Endpoints, func(_ string, e EndpointDoc) bool { return e.Count == 0 }) // no calls: not read
	for k := range doc.Endpoints {
		// The name as the key carries it: OfService takes it as it is.
		svc := ""
		if i := strings.IndexByte(k, ' '); i > 0 && k[i-1] == ':' {
			svc = k[:i-1]
		}
		if _, done := want[svc]; done {
			continue
		}
		of := doc.OfService(svc)
		if of.Total == 0 {
			continue
		}
		var seen int64
		if of.LastSeen != nil {
			seen = of.LastSeen.UnixNano()
		}
		want[svc] = ServiceCalls{Service: []byte(svc), Calls: of.Total, LastSeen: seen}
	}
	return want
}

func checkByService(t *testing.T, u *activitypb.ClientUsage, into []ServiceCalls) {
	t.Helper()
	b, err := u.MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	total, seen, got, err := UsageByService(b, into)
	wantTotal, wantSeen, _ := UsageTotals(b)
	if err != nil || total != wantTotal || seen != wantSeen {
		t.Fatalf("totals %d %d (%v), want %d %d", total, seen, err, wantTotal, wantSeen)
	}
	if len(got) < len(into) || !slices.EqualFunc(got[:len(into)], into, func(a, b ServiceCalls) bool { return bytes.Equal(a.Service, b.Service) }) {
		t.Fatalf("the entries before the row's were changed: %v", got)
	}
	got = got[len(into):]
	want := byServiceOfDoc(u)
	if len(got) != len(want) {
		t.Fatalf("%d services %v, want %d %v", len(got), got, len(want), want)
	}
	for _, g := range got {
		w, ok := want[string(g.Service)]
		if !ok || g.Calls != w.Calls || g.LastSeen != w.LastSeen {
			t.Fatalf("service %q: %d calls, last %d; want %+v (found %v)", g.Service, g.Calls, g.LastSeen, w, ok)
		}
	}
}

// TestUsageByServiceMatchesOfService: per service, the calls and last call
// read from the encoding are those GET /usage/{client}?service= shows,
// with one service, a few, and more than the linear search takes.
func TestUsageByServiceMatchesOfService(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range 3000 {
		u := &activitypb.ClientUsage{Client: fmt.Sprintf("c%d", i), Endpoints: map[string]*activitypb.EndpointUsage{},
			LastSeen: timestamppb.New(time.Unix(rng.Int64N(4e9), 0)), AppliedOffsets: map[int32]int64{1: 5}}
		services := []int{1, 2, 3, 40}[i%4]
		for range rng.IntN(60) {
			svc := ""
			if s := rng.IntN(services); s > 0 {
				svc = fmt.Sprintf("svc %d", s) // a space: NormalService keeps it as _
			}
			if s := rng.IntN(services); s == 1 {
				svc = DefaultService
			}
			key := ServiceEndpointKey(svc, fmt.Sprintf("GET /r%d x", rng.IntN(20)))
			e := &activitypb.EndpointUsage{Count: 1 + uint64(rng.IntN(5)), StatusClasses: []uint64{0, 3}}
			if rng.IntN(3) > 0 {
				e.LastSeen = timestamppb.New(time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)))
			}
			u.Endpoints[key] = e
			u.Total += e.Count
		}
		var into []ServiceCalls
		if i%2 == 1 {
			into = []ServiceCalls{{Service: []byte("kept"), Calls: 1}}
		}
		checkByService(t, u, into)
	}
}

func TestUsageByServiceRejectsMalformedEndpoints(t *testing.T) {
	for _, bad := range [][]byte{
		{0x12, 0x05, 0x0a},                   // entry longer than the row
		{0x12, 0x03, 0x0a, 0x05, 0x61},       // key longer than the entry
		{0x12, 0x04, 0x12, 0x02, 0x08, 0xff}, // count cut short
	} {
		if _, _, _, err := UsageByService(bad, nil); err == nil {
			t.Errorf("UsageByService(%x) accepted a malformed message", bad)
		}
	}
}

func FuzzUsageByService(f *testing.F) {
	u := &activitypb.ClientUsage{Client: "c", Total: 9, LastSeen: timestamppb.Now(),
		Endpoints: map[string]*activitypb.EndpointUsage{"GET /x": {Count: 7, LastSeen: timestamppb.Now()}, "shop: GET /y": {Count: 2}}}
	b, _ := u.MarshalVT()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _, err := UsageByService(b, nil)
		var full activitypb.ClientUsage
		if full.UnmarshalVT(b) != nil || err != nil {
			return // garbage either way; only no panic is required
		}
		for _, e := range full.Endpoints {
			if s := e.GetLastSeen().GetSeconds(); s < 0 || s > math.MaxInt64/int64(time.Second)-1 {
				return // not a time in Unix nanoseconds, as every request time is
			}
		}
		// Re-encoded, keys are unique, as the table writes them.
		checkByService(t, &full, nil)
	})
}

// BenchmarkUsageByService reads a row of five endpoints of one service with
// the open buckets of three windows, as every write of the usage table's
// index does ("totals": what it read before services).
func BenchmarkUsageByService(b *testing.B) {
	u := &activitypb.ClientUsage{Client: "10.0.0.1", Total: 50, LastSeen: timestamppb.Now(), FirstSeen: timestamppb.Now(),
		Endpoints: map[string]*activitypb.EndpointUsage{}, AppliedOffsets: map[int32]int64{3: 12345}}
	for i, r := range []string{"GET /usage/{client}", "GET /users/{id}", "POST /users", "PATCH /users/{id}", "GET /healthz"} {
		u.Endpoints[r] = &activitypb.EndpointUsage{Count: 10, LastSeen: timestamppb.Now(), StatusClasses: []uint64{0, 9, 0, 1}, WindowId: uint32(i)}
	}
	// The open buckets of the default windows, as a worker's rows carry them.
	for _, step := range []int64{60, 3600, 86400} {
		u.OpenBuckets = append(u.OpenBuckets, &activitypb.WindowBucket{StepSeconds: step, StartUnix: 1_750_000_000, Total: 50,
			EndpointIds: []uint32{0, 1, 2, 3, 4}, Counts: []uint64{10, 10, 10, 10, 10}, StatusClassed: true,
			StatusKeys: []uint32{1, 3, 6, 8, 11}, StatusCounts: []uint64{9, 1, 10, 10, 10}})
	}
	row, _ := u.MarshalVT()
	b.Run("totals", func(b *testing.B) {
		for range b.N {
			_, _, _ = UsageTotals(row)
		}
	})
	b.Run("by-service", func(b *testing.B) {
		var into [4]ServiceCalls
		for range b.N {
			_, _, _, _ = UsageByService(row, into[:0])
		}
	})
}

// TestUsageByServiceReadsAnyFieldOrder: an entry laid out otherwise than
// the table writes it (value before key, last_seen before count, a count
// repeated, long lengths) is read as a full decode reads it.
func TestUsageByServiceReadsAnyFieldOrder(t *testing.T) {
	ts := protowire.AppendTag(nil, 1, protowire.VarintType)
	ts = protowire.AppendVarint(ts, 1_700_000_000)
	ts = protowire.AppendTag(ts, 2, protowire.VarintType)
	ts = protowire.AppendVarint(ts, 5)
	var value []byte
	value = protowire.AppendTag(value, 2, protowire.BytesType)
	value = protowire.AppendBytes(value, ts)
	value = protowire.AppendTag(value, 1, protowire.VarintType)
	value = protowire.AppendVarint(value, 3)
	value = protowire.AppendTag(value, 1, protowire.VarintType)
	value = protowire.AppendVarint(value, 4) // the last one counts
	key := "shop: GET /" + strings.Repeat("x", 200)
	var entry []byte
	entry = protowire.AppendTag(entry, 2, protowire.BytesType)
	entry = protowire.AppendBytes(entry, value)
	entry = protowire.AppendTag(entry, 1, protowire.BytesType)
	entry = protowire.AppendString(entry, key)
	var row []byte
	row = protowire.AppendTag(row, 2, protowire.BytesType)
	row = protowire.AppendBytes(row, entry)
	row = protowire.AppendTag(row, 3, protowire.VarintType)
	row = protowire.AppendVarint(row, 4)

	var full activitypb.ClientUsage
	if err := full.UnmarshalVT(row); err != nil || full.Endpoints[key].GetCount() != 4 {
		t.Fatalf("the row does not decode as meant: %v %v", err, full.Endpoints)
	}
	_, _, got, err := UsageByService(row, nil)
	want := ServiceCalls{Service: []byte("shop"), Calls: 4, LastSeen: 1_700_000_000*1e9 + 5}
	if err != nil || len(got) != 1 || !bytes.Equal(got[0].Service, want.Service) || got[0].Calls != want.Calls || got[0].LastSeen != want.LastSeen {
		t.Fatalf("got %+v (%v), want %+v", got, err, want)
	}
}

// TestUsageTotalsMergesRepeatedLastSeen: a last_seen repeated in a row
// merges field by field, as a full decode does.
func TestUsageTotalsMergesRepeatedLastSeen(t *testing.T) {
	ts := func(secs, nanos uint64) []byte {
		var b []byte
		if secs != 0 {
			b = protowire.AppendVarint(protowire.AppendTag(b, 1, protowire.VarintType), secs)
		}
		if nanos != 0 {
			b = protowire.AppendVarint(protowire.AppendTag(b, 2, protowire.VarintType), nanos)
		}
		return b
	}
	var row []byte
	row = protowire.AppendBytes(protowire.AppendTag(row, 5, protowire.BytesType), ts(1_700_000_000, 7))
	row = protowire.AppendBytes(protowire.AppendTag(row, 5, protowire.BytesType), ts(1_700_000_100, 0))
	var full activitypb.ClientUsage
	if err := full.UnmarshalVT(row); err != nil {
		t.Fatal(err)
	}
	want := full.LastSeen.Seconds*1e9 + int64(full.LastSeen.Nanos)
	if _, got, err := UsageTotals(row); err != nil || got != want || want != 1_700_000_100*1e9+7 {
		t.Fatalf("last seen %d (%v), want %d", got, err, want)
	}
}

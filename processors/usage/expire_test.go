package usage_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/lovoo/goka/storage"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/tablestore"
	"github.com/inarious/inarious/internal/top"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/processors/usage"
)

// An expiry record deletes the row only if the client is still idle; the
// row's open buckets are emitted first, and a later event starts afresh.
func TestExpireDeletesIdleRows(t *testing.T) {
	gkt, u, _ := startWindowed(t, minutes)
	out := gkt.NewQueueTracker(windows.Topic(time.Minute))
	in, ctl := string(codecs.ActivityTopic), string(usage.ControlTopic)
	gkt.Consume(in, "idle", eventAt("idle", "/a", t0))
	gkt.Consume(in, "idle", eventAt("idle", "/a", t0.Add(time.Second)))
	gkt.Consume(in, "busy", eventAt("busy", "/a", t0.Add(10*time.Minute)))
	cutoff := t0.Add(5 * time.Minute).UnixNano()

	gkt.Consume(ctl, "idle", &activitypb.Expire{IdleSinceUnixNano: cutoff})
	gkt.Consume(ctl, "busy", &activitypb.Expire{IdleSinceUnixNano: cutoff})
	gkt.Consume(ctl, "nobody", &activitypb.Expire{IdleSinceUnixNano: cutoff})
	if v := gkt.TableValue(usage.Table, "idle"); v != nil {
		t.Errorf("idle client kept: %v", v)
	}
	if v := gkt.TableValue(usage.Table, "nobody"); v != nil {
		t.Errorf("expiry created a row: %v", v)
	}
	if row(t, gkt, "busy").GetTotal() != 1 {
		t.Error("busy client lost its counts")
	}
	got := emitted(out)
	if vs := got[windows.Key("idle", t0.Unix())]; len(got) != 1 || len(vs) != 1 || vs[0].GetTotal() != 2 {
		t.Errorf("emitted %v, want the idle client's open 12:00 bucket with 2 calls", got)
	}
	if s := u.Stats(); s.Expired != 1 {
		t.Errorf("stats %+v, want 1 expired", s)
	}
	// The value cache forgot the row too: counting restarts at 1.
	gkt.Consume(in, "idle", eventAt("idle", "/a", t0.Add(20*time.Minute)))
	if r := row(t, gkt, "idle"); r.GetTotal() != 1 || r.GetFirstSeen().AsTime() != t0.Add(20*time.Minute) {
		t.Errorf("after expiry: total %d first seen %v, want a fresh row", r.GetTotal(), r.GetFirstSeen().AsTime())
	}
	// A replayed expiry record does not delete the client seen again.
	gkt.Consume(ctl, "idle", &activitypb.Expire{IdleSinceUnixNano: cutoff})
	if row(t, gkt, "idle").GetTotal() != 1 {
		t.Error("replayed expiry deleted a client seen since")
	}
}

// The janitor scans the table partitions this member has open, and only
// those: a closed (revoked) partition is no longer scanned.
func TestIdleClientsScansOwnedPartitions(t *testing.T) {
	u := usage.New()
	build := u.WrapStorage(tablestore.Builder(t.TempDir(), tablestore.DefaultOptions()))
	codec := new(codecs.ClientUsage)
	opened := map[string]storage.Storage{}
	open := func(topic string, partition int32) storage.Storage {
		k := fmt.Sprint(topic, partition)
		if opened[k] == nil {
			st, err := build(topic, partition)
			if err != nil {
				t.Fatal(err)
			}
			opened[k] = st
			t.Cleanup(func() { _ = st.Close() })
		}
		return opened[k]
	}
	put := func(topic string, partition int32, client string, seen time.Time) {
		st := open(topic, partition)
		b, _ := codec.Encode(&activitypb.ClientUsage{Client: client, Total: 1, LastSeen: timestamppb.New(seen)})
		if err := st.Set(client, b); err != nil {
			t.Fatal(err)
		}
	}
	table := string(usage.Table)
	old, recent := t0.Add(-500*24*time.Hour), t0.Add(-time.Hour)
	stores := map[int32][]string{}
	for p := range int32(3) {
		for i := range 4 {
			c := fmt.Sprintf("p%d-c%d", p, i)
			seen := recent
			if i%2 == 0 {
				seen = old
				stores[p] = append(stores[p], c)
			}
			put(table, p, c, seen)
		}
	}
	put("other-table", 0, "not-usage", old)
	scan := func() []string {
		var got []string
		if err := u.IdleClients(t0.Add(-400*24*time.Hour), func(c string) { got = append(got, c) }); err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		return got
	}
	want := append(append(append([]string{}, stores[0]...), stores[1]...), stores[2]...)
	if got := scan(); !slices.Equal(got, want) {
		t.Errorf("idle %v, want %v", got, want)
	}
	// Revoke partition 1: goka closes its storage.
	if err := open(table, 1).Close(); err != nil {
		t.Fatal(err)
	}
	want = append(append([]string{}, stores[0]...), stores[2]...)
	if got := scan(); !slices.Equal(got, want) {
		t.Errorf("after revoking partition 1: idle %v, want %v", got, want)
	}
}

// The janitor reads last_seen without decoding the row; it must agree with
// the decoded value for any row.
func TestUsageTotalsLastSeenAgreesWithDecoding(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	w := windows.Default()
	for i := range 200 {
		row := &activitypb.ClientUsage{Client: "c"}
		for j := range rng.IntN(20) {
			at := t0.Add(time.Duration(rng.Int64N(int64(72 * time.Hour))))
			if rng.IntN(10) == 0 {
				at = time.Date(1900+rng.IntN(300), 1, 1, 0, 0, 0, rng.IntN(1e9), time.UTC)
			}
			usage.Apply(row, &activitypb.BackendApiActivity{Client: "c", HttpMethod: "GET", Route: fmt.Sprintf("/r%d", rng.IntN(4)), RequestTime: timestamppb.New(at)},
				usage.Position{Offset: int64(j)}, w, t0.Add(96*time.Hour))
		}
		b, err := proto.Marshal(row)
		if err != nil {
			t.Fatal(err)
		}
		_, got, err := codecs.UsageTotals(b)
		want := int64(0)
		if row.LastSeen != nil {
			want = row.LastSeen.AsTime().UnixNano()
		}
		if err != nil || got != want {
			t.Fatalf("row %d: UsageTotals last seen = %d %v, want %d", i, got, err, want)
		}
	}
}

// With WithTopIndex the member's table storages feed the index: it ranks
// the clients of the partitions this member holds.
func TestWithTopIndexRanksOwnPartitions(t *testing.T) {
	idx := top.New()
	u := usage.New(usage.WithTopIndex(idx))
	st, err := u.WrapStorage(tablestore.Builder(t.TempDir(), tablestore.DefaultOptions()))(string(usage.Table), 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Open(); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, _ := new(codecs.ClientUsage).Encode(&activitypb.ClientUsage{Client: "c", Total: 4})
	if err := st.Set("c", b); err != nil {
		t.Fatal(err)
	}
	if err := st.MarkRecovered(); err != nil {
		t.Fatal(err)
	}
	if n, sum, ranked := idx.Partition(top.AllCalls, 3); n != 1 || sum != 4 || !ranked {
		t.Errorf("partition 3: %d clients, sum %d, ranked %v; want 1, 4, ranked", n, sum, ranked)
	}
}

package usage_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/processors/usage"
)

var usageTable = usage.Table

// apply is usage.Apply with the default windows, at a processing time
// after the test events' request time.
func apply(u *activitypb.ClientUsage, ev *activitypb.BackendApiActivity, pos usage.Position) bool {
	return usage.Apply(u, ev, pos, windows.Default(), time.Unix(1700000100, 0)).Applied
}

// startUsage runs the usage group on goka's in-memory tester.
func startUsage(t *testing.T, opts ...usage.Option) (*tester.Tester, *usage.Processor) {
	t.Helper()
	gkt := tester.New(t)
	u := usage.New(opts...)
	proc, err := goka.NewProcessor(nil, u.Graph(), goka.WithTester(gkt))
	if err != nil {
		t.Fatal(err)
	}
	testutil.RunProcessor(t, proc)
	return gkt, u
}

func event(client, method, route string) []byte {
	b, err := proto.Marshal(&activitypb.BackendApiActivity{
		ClientHost: client, ClientPort: "5555", Endpoint: "/raw/path", HttpMethod: method,
		Route: route, Client: client, HttpStatus: 200, RequestTime: timestamppb.New(time.Unix(1700000000, 0)),
	})
	if err != nil {
		panic(err)
	}
	return b
}

func TestUsageCountsPerClientAndRouteTemplate(t *testing.T) {
	gkt, u := startUsage(t)
	sends := []struct{ client, method, route string }{
		{"10.0.0.1", "GET", "/users/{id}"},
		{"10.0.0.1", "GET", "/users/{id}"},
		{"10.0.0.1", "POST", "/users"},
		{"10.0.0.2", "GET", "/users/{id}"},
		{"10.0.0.2", "DELETE", ""},
	}
	for _, s := range sends {
		gkt.Consume(string(codecs.ActivityTopic), s.client, event(s.client, s.method, s.route))
	}

	want := map[string]map[string]uint64{
		"10.0.0.1": {"GET /users/{id}": 2, "POST /users": 1},
		// No route template: named by the event's path.
		"10.0.0.2": {"GET /users/{id}": 1, "DELETE /raw/path": 1},
	}
	for client, endpoints := range want {
		v, _ := gkt.TableValue(usageTable, client).(*activitypb.ClientUsage)
		if v == nil {
			t.Fatalf("no usage for %s", client)
		}
		var total uint64
		for ep, n := range endpoints {
			if got := v.Endpoints[ep].GetCount(); got != n {
				t.Errorf("%s %s = %d, want %d", client, ep, got, n)
			}
			total += n
		}
		if len(v.Endpoints) != len(endpoints) {
			t.Errorf("%s has endpoints %v, want %d of them", client, v.Endpoints, len(endpoints))
		}
		if v.Total != total || v.Client != client {
			t.Errorf("%s: total %d client %q, want %d %q", client, v.Total, v.Client, total, client)
		}
		if v.FirstSeen == nil || v.LastSeen == nil {
			t.Errorf("%s: first/last seen not set", client)
		}
	}
	if s := u.Stats(); s.Processed != uint64(len(sends)) || s.DeadLettered != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestUsageDeadLettersPoisonRecords(t *testing.T) {
	gkt, u := startUsage(t)
	dlq := gkt.NewQueueTracker(string(usage.DeadLetterTopic))
	noClient, _ := proto.Marshal(&activitypb.BackendApiActivity{HttpMethod: "GET"})
	cases := []struct {
		name, key string
		value     []byte
		reason    string
	}{
		{"garbage", "k", []byte{0xff, 0xff, 0xff}, "undecodable"},
		{"no client", "k", noClient, "no client"},
	}
	for _, c := range cases {
		gkt.Consume(string(codecs.ActivityTopic), c.key, c.value)
	}
	for _, c := range cases {
		hdr, key, raw, ok := dlq.NextRawWithHeaders()
		if !ok {
			t.Fatalf("%s: nothing dead-lettered", c.name)
		}
		if key != c.key || string(raw) != string(c.value) {
			t.Errorf("%s: dead letter key %q value %x", c.name, key, raw)
		}
		if r := string(hdr[usage.HeaderReason]); !strings.Contains(r, c.reason) {
			t.Errorf("%s: reason %q, want it to mention %q", c.name, r, c.reason)
		}
		if hdr[usage.HeaderOffset] == nil || hdr[usage.HeaderPartition] == nil {
			t.Errorf("%s: source headers missing: %v", c.name, hdr)
		}
	}
	if s := u.Stats(); s.DeadLettered != 2 || s.Processed != 0 {
		t.Errorf("stats %+v", s)
	}
	// The group still counts good events after poison ones.
	gkt.Consume(string(codecs.ActivityTopic), "10.0.0.9", event("10.0.0.9", "GET", "/x"))
	if v, _ := gkt.TableValue(usageTable, "10.0.0.9").(*activitypb.ClientUsage); v.GetTotal() != 1 {
		t.Errorf("after poison, total = %d, want 1", v.GetTotal())
	}
}

func TestApplySkipsReplayedOffsets(t *testing.T) {
	u := &activitypb.ClientUsage{Client: "c"}
	ev := &activitypb.BackendApiActivity{Client: "c", HttpMethod: "GET", Route: "/a"}
	steps := []struct {
		partition int32
		offset    int64
		applied   bool
	}{
		{0, 5, true},
		{0, 5, false}, // replay of the same record
		{0, 3, false}, // replay of an older one
		{0, 6, true},
		{1, 2, true}, // another partition has its own offsets
	}
	for i, s := range steps {
		if got := apply(u, ev, usage.Position{Partition: s.partition, Offset: s.offset}); got != s.applied {
			t.Errorf("step %d: applied = %v, want %v", i, got, s.applied)
		}
	}
	if u.Total != 3 || u.Endpoints["GET /a"].GetCount() != 3 {
		t.Errorf("total %d, endpoint %d; want 3, 3", u.Total, u.Endpoints["GET /a"].GetCount())
	}
}

// BenchmarkApply counts one client's events, 10 per second of event time,
// without and with the default windows (whose buckets then close now and
// then).
func BenchmarkApply(b *testing.B) {
	for _, c := range []struct {
		name string
		w    windows.Config
	}{{"windows=off", windows.Config{}}, {"windows=default", windows.Default()}} {
		b.Run(c.name, func(b *testing.B) {
			start := time.Now().Add(-24 * time.Hour)
			now := time.Now()
			ev := &activitypb.BackendApiActivity{Client: "c", HttpMethod: "GET", Route: "/users/{id}", HttpStatus: 200, RequestTime: timestamppb.New(start)}
			u := &activitypb.ClientUsage{Client: "c"}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				ev.RequestTime = timestamppb.New(start.Add(time.Duration(i) * 100 * time.Millisecond))
				usage.Apply(u, ev, usage.Position{Offset: int64(i)}, c.w, now)
			}
		})
	}
}

// BenchmarkProcess is the whole callback as goka runs it: decode the event,
// read and decode the client's value, count, encode and store it.
func BenchmarkProcess(b *testing.B) {
	gkt := tester.New(b)
	u := usage.New()
	proc, err := goka.NewProcessor(nil, u.Graph(), goka.WithTester(gkt))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = proc.Run(ctx) }()
	clients := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}
	events := make([][]byte, len(clients))
	for i, c := range clients {
		events[i] = event(c, "GET", "/users/{id}")
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		gkt.Consume(string(codecs.ActivityTopic), clients[i%len(clients)], events[i%len(clients)])
	}
}

func TestValueCacheServesCountsAndIsDroppedOnRebalance(t *testing.T) {
	gkt, u := startUsage(t, usage.WithValueCache(2))
	topic := string(codecs.ActivityTopic)
	clients := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"} // more than the cache holds
	for round := 0; round < 4; round++ {
		for _, c := range clients {
			gkt.Consume(topic, c, event(c, "GET", "/a"))
		}
	}
	for _, c := range clients {
		if v, _ := gkt.TableValue(usageTable, c).(*activitypb.ClientUsage); v.GetTotal() != 4 {
			t.Errorf("%s total = %d, want 4", c, v.GetTotal())
		}
	}
	// Another member counted for 10.0.0.3 while we did not own it: after a
	// rebalance the stored value, not our cached copy, is the truth.
	stored := gkt.TableValue(usageTable, "10.0.0.3").(*activitypb.ClientUsage)
	stored.Total = 100
	stored.Endpoints["GET /a"].Count = 100
	gkt.SetTableValue(usageTable, "10.0.0.3", stored)
	u.Rebalanced(goka.Assignment{})
	gkt.Consume(topic, "10.0.0.3", event("10.0.0.3", "GET", "/a"))
	if v := gkt.TableValue(usageTable, "10.0.0.3").(*activitypb.ClientUsage); v.GetTotal() != 101 {
		t.Errorf("after rebalance total = %d, want 101 (stale cache used?)", v.GetTotal())
	}
}

// A replayed event is not counted again, but the value is written to the
// changelog once more: after a crash the local value can be ahead of it.
func TestReplayRewritesValueToChangelog(t *testing.T) {
	gkt, u := startUsage(t)
	changelog := gkt.NewQueueTracker(string(usageTable))
	ahead := &activitypb.ClientUsage{Client: "10.0.0.5", Total: 7, AppliedOffsets: map[int32]int64{0: 1 << 40}}
	gkt.SetTableValue(usageTable, "10.0.0.5", ahead)
	changelog.Seek(changelog.Hwm())

	gkt.Consume(string(codecs.ActivityTopic), "10.0.0.5", event("10.0.0.5", "GET", "/a"))

	if s := u.Stats(); s.Replays != 1 || s.Processed != 0 {
		t.Fatalf("stats %+v, want one replay", s)
	}
	key, v, ok := changelog.Next()
	if !ok || key != "10.0.0.5" || v.(*activitypb.ClientUsage).GetTotal() != 7 {
		t.Errorf("changelog got %q %v %v, want the unchanged value re-written", key, v, ok)
	}
}

// originalEvent is what the original FastAPI service produced: fields 1-4
// only, the full URL as endpoint.
func originalEvent(client, method, url string) []byte {
	b, err := proto.Marshal(&activitypb.BackendApiActivity{ClientHost: client, ClientPort: "5555", Endpoint: url, HttpMethod: method})
	if err != nil {
		panic(err)
	}
	return b
}

// The original service keys every event by its own hostname: each is sent on
// to its client's row and counted there, once, by path.
func TestUsageRekeysEventsKeyedByServerHost(t *testing.T) {
	gkt, u := startUsage(t)
	topic := string(codecs.ActivityTopic)
	for range 3 {
		gkt.Consume(topic, "localhost", originalEvent("10.0.0.1", "GET", "http://localhost:8000/users/"))
	}
	gkt.Consume(topic, "localhost", originalEvent("10.0.0.1", "GET", "http://localhost:8000/users/42?full=1"))
	gkt.Consume(topic, "localhost", originalEvent("10.0.0.2", "POST", "http://localhost:8000/users"))

	want := map[string]map[string]uint64{
		"10.0.0.1": {"GET /users": 3, "GET /users/{id}": 1},
		"10.0.0.2": {"POST /users": 1},
	}
	for client, endpoints := range want {
		v, _ := gkt.TableValue(usageTable, client).(*activitypb.ClientUsage)
		var total uint64
		for ep, n := range endpoints {
			if got := v.GetEndpoints()[ep].GetCount(); got != n {
				t.Errorf("%s %s = %d, want %d (endpoints %v)", client, ep, got, n, v.GetEndpoints())
			}
			total += n
		}
		if v.GetTotal() != total {
			t.Errorf("%s total %d, want %d", client, v.GetTotal(), total)
		}
	}
	if v := gkt.TableValue(usageTable, "localhost"); v != nil {
		t.Errorf("the producer's key got a row: %v", v)
	}
	if s := u.Stats(); s.Rekeyed != 5 || s.Processed != 5 || s.DeadLettered != 0 {
		t.Errorf("stats %+v, want 5 re-keyed and counted", s)
	}
}

// A record keyed by its client but placed by another partitioner lands in a
// partition whose table does not hold the client: it is sent on, not counted
// in place. (goka's tester has one partition; the processor is told there
// are eight, so clients murmur2 puts elsewhere count as misplaced.)
func TestUsageRekeysEventsInAnotherPartition(t *testing.T) {
	gkt, u := startUsage(t)
	u.SetPartitions(8)
	topic := string(codecs.ActivityTopic)
	var home, away string
	for i := 0; home == "" || away == ""; i++ {
		c := fmt.Sprintf("10.0.1.%d", i)
		if kafka.PartitionOf(c, 8) == 0 {
			home = c
		} else {
			away = c
		}
	}
	for _, c := range []string{home, away, away} {
		gkt.Consume(topic, c, event(c, "GET", "/a"))
	}
	if s := u.Stats(); s.Rekeyed != 2 || s.Processed != 3 {
		t.Errorf("stats %+v, want 2 of 3 re-keyed, all counted", s)
	}
	if v := gkt.TableValue(usageTable, away).(*activitypb.ClientUsage); v.GetTotal() != 2 || len(v.GetRekeyedOffsets()) != 1 {
		t.Errorf("%s: total %d rekeyed offsets %v, want 2 and one source partition", away, v.GetTotal(), v.GetRekeyedOffsets())
	}
}

// Events read in place and events that came through the loopback keep their
// own watermarks: the loopback delays records, so a re-keyed event from
// offset 5 may arrive after an in-place one from offset 9 and still count.
func TestApplyKeepsRekeyedPositionsApart(t *testing.T) {
	u := &activitypb.ClientUsage{Client: "c"}
	ev := &activitypb.BackendApiActivity{Client: "c", HttpMethod: "GET", Route: "/a"}
	steps := []struct {
		pos     usage.Position
		applied bool
	}{
		{usage.Position{Partition: 0, Offset: 9}, true},
		{usage.Position{Partition: 0, Offset: 5, Rekeyed: true}, true},
		{usage.Position{Partition: 0, Offset: 5, Rekeyed: true}, false}, // the replay re-sent it
		{usage.Position{Partition: 0, Offset: 9}, false},
		{usage.Position{Partition: 0, Offset: 6, Rekeyed: true}, true},
	}
	for i, s := range steps {
		if got := apply(u, ev, s.pos); got != s.applied {
			t.Errorf("step %d %+v: applied = %v, want %v", i, s.pos, got, s.applied)
		}
	}
	if u.Total != 3 {
		t.Errorf("total %d, want 3", u.Total)
	}
}

// Endpoints beyond MaxEndpoints per client are counted as one bucket.
func TestApplyCapsDistinctEndpoints(t *testing.T) {
	u := &activitypb.ClientUsage{Client: "c"}
	for i := range usage.MaxEndpoints + 10 {
		ev := &activitypb.BackendApiActivity{Client: "c", HttpMethod: "GET", Route: fmt.Sprintf("/r%d", i)}
		apply(u, ev, usage.Position{Offset: int64(i)})
	}
	if n := len(u.Endpoints); n != usage.MaxEndpoints+1 {
		t.Errorf("%d endpoints, want %d + the overflow bucket", n, usage.MaxEndpoints)
	}
	if got := u.Endpoints["GET "+usage.OtherEndpoint].GetCount(); got != 10 {
		t.Errorf("overflow bucket %d, want 10", got)
	}
	if u.Total != usage.MaxEndpoints+10 {
		t.Errorf("total %d", u.Total)
	}
}

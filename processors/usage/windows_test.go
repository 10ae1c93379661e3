package usage_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// clock is a settable processing-time clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// minutes keeps 1 m buckets with the default grace (1 m).
var minutes = windows.Config{Specs: []windows.Spec{{Step: time.Minute, Retention: time.Hour}}, Grace: time.Minute}

func startWindowed(t *testing.T, w windows.Config, opts ...usage.Option) (*tester.Tester, *usage.Processor, *clock) {
	t.Helper()
	c := &clock{now: t0.Add(time.Hour)}
	gkt, u := startUsage(t, append([]usage.Option{usage.WithWindows(w), usage.WithClock(c.Now)}, opts...)...)
	return gkt, u, c
}

func eventAt(client, route string, at time.Time) []byte {
	b, err := proto.Marshal(&activitypb.BackendApiActivity{
		ClientHost: client, HttpMethod: "GET", Route: route, Client: client, RequestTime: timestamppb.New(at),
	})
	if err != nil {
		panic(err)
	}
	return b
}

// emitted drains a windowed topic: key → every value emitted under it, in order.
func emitted(qt *tester.QueueTracker) map[string][]*activitypb.WindowCounts {
	out := map[string][]*activitypb.WindowCounts{}
	for {
		k, v, ok := qt.Next()
		if !ok {
			return out
		}
		out[k] = append(out[k], v.(*activitypb.WindowCounts))
	}
}

func row(t *testing.T, gkt *tester.Tester, client string) *activitypb.ClientUsage {
	t.Helper()
	v, _ := gkt.TableValue(usage.Table, client).(*activitypb.ClientUsage)
	if v == nil {
		t.Fatalf("no row for %s", client)
	}
	return v
}

// 59.999 s belongs to the first minute, 60 s to the next; each bucket is
// emitted when the stream time reaches its end plus the grace period.
func TestWindowBucketBoundaries(t *testing.T) {
	gkt, _, _ := startWindowed(t, minutes)
	out := gkt.NewQueueTracker(windows.Topic(time.Minute))
	in := string(codecs.ActivityTopic)
	gkt.Consume(in, "c", eventAt("c", "/a", t0.Add(59999*time.Millisecond)))
	gkt.Consume(in, "c", eventAt("c", "/a", t0.Add(60*time.Second)))
	if got := emitted(out); len(got) != 0 {
		t.Fatalf("emitted before any bucket closed: %v", got)
	}
	// 12:02:59.999 is before 12:01's end + grace (12:03): only 12:00 closes.
	gkt.Consume(in, "c", eventAt("c", "/a", t0.Add(3*time.Minute-time.Millisecond)))
	got := emitted(out)
	if len(got) != 1 || len(got[windows.Key("c", t0.Unix())]) != 1 || got[windows.Key("c", t0.Unix())][0].GetTotal() != 1 {
		t.Fatalf("at 12:02:59.999 emitted %v, want only 12:00 with 1 call", got)
	}
	gkt.Consume(in, "c", eventAt("c", "/a", t0.Add(3*time.Minute)))
	got = emitted(out)
	k := windows.Key("c", t0.Add(time.Minute).Unix())
	if len(got) != 1 || len(got[k]) != 1 || got[k][0].GetTotal() != 1 || got[k][0].GetEndpoints()["GET /a"] != 1 {
		t.Fatalf("at 12:03 emitted %v, want only 12:01 with 1 call", got)
	}
	r := row(t, gkt, "c")
	var starts []int64
	for _, b := range r.GetOpenBuckets() {
		starts = append(starts, b.GetStartUnix())
	}
	if len(starts) != 2 || starts[0] != t0.Add(2*time.Minute).Unix() || starts[1] != t0.Add(3*time.Minute).Unix() {
		t.Errorf("open buckets start %v, want 12:02 and 12:03", starts)
	}
	if r.GetTotal() != 4 {
		t.Errorf("all-time total %d, want 4", r.GetTotal())
	}
}

// An event for a closed bucket is late: within the grace period it counts,
// beyond it the granularity drops it and the counter says so; the all-time
// counts and coarser buckets still open have it.
func TestWindowLateEvents(t *testing.T) {
	w := windows.Config{Specs: []windows.Spec{{Step: time.Minute, Retention: time.Hour}, {Step: time.Hour, Retention: 24 * time.Hour}}, Grace: time.Minute}
	gkt, u, _ := startWindowed(t, w)
	out1m := gkt.NewQueueTracker(windows.Topic(time.Minute))
	in := string(codecs.ActivityTopic)
	gkt.Consume(in, "c", eventAt("c", "/a", t0.Add(10*time.Second)))
	gkt.Consume(in, "c", eventAt("c", "/a", t0.Add(90*time.Second))) // stream time 12:01:30
	gkt.Consume(in, "c", eventAt("c", "/b", t0.Add(40*time.Second))) // late, within grace (12:00 closes at 12:02)
	if s := u.Stats(); s.Late != 0 {
		t.Fatalf("late within grace counted as dropped: %+v", s)
	}
	gkt.Consume(in, "c", eventAt("c", "/a", t0.Add(2*time.Minute)))  // closes 12:00
	gkt.Consume(in, "c", eventAt("c", "/b", t0.Add(50*time.Second))) // beyond grace
	got := emitted(out1m)[windows.Key("c", t0.Unix())]
	if len(got) != 1 || got[0].GetTotal() != 2 || got[0].GetEndpoints()["GET /b"] != 1 || got[0].GetEndpoints()["GET /a"] != 1 {
		t.Fatalf("12:00 emitted %v, want once: 1 /a and the /b inside grace", got)
	}
	if s := u.Stats(); s.Late != 1 || s.Processed != 5 {
		t.Errorf("stats %+v, want 1 late (one granularity), 5 processed", s)
	}
	var late uint64
	for _, c := range u.Counters() {
		if c.Name == "usage_late_events_dropped_total" {
			late = c.Value()
		}
	}
	if late != 1 {
		t.Errorf("usage_late_events_dropped_total = %d, want 1", late)
	}
	r := row(t, gkt, "c")
	if r.GetTotal() != 5 || r.GetEndpoints()["GET /b"].GetCount() != 2 {
		t.Errorf("all-time total %d, /b %d; want 5 and 2", r.GetTotal(), r.GetEndpoints()["GET /b"].GetCount())
	}
	for _, b := range r.GetOpenBuckets() {
		if b.GetStepSeconds() == 3600 && b.GetTotal() != 5 {
			t.Errorf("hour bucket %d, want all 5 (it is still open)", b.GetTotal())
		}
		if b.GetStepSeconds() == 60 && b.GetStartUnix() == t0.Unix() {
			t.Error("the closed 12:00 bucket was reopened by the late event")
		}
	}
}

// A bucket's final value is emitted once, however many later events and
// closes follow, and equals what was counted into it.
func TestWindowCloseEmitsOnceWithFinalValue(t *testing.T) {
	gkt, _, _ := startWindowed(t, minutes)
	out := gkt.NewQueueTracker(windows.Topic(time.Minute))
	in := string(codecs.ActivityTopic)
	want := map[int64]uint64{}
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 600 {
		// Ten minutes of calls, every second, some up to 50 s out of order.
		at := t0.Add(time.Duration(i)*time.Second - time.Duration(rng.IntN(50))*time.Second)
		gkt.Consume(in, "c", eventAt("c", "/a", at))
		want[windows.StartUnix(at.UnixNano(), time.Minute)]++
	}
	gkt.Consume(in, "c", eventAt("c", "/a", t0.Add(time.Hour))) // closes everything before
	got := emitted(out)
	for start, n := range want {
		vs := got[windows.Key("c", start)]
		if len(vs) != 1 {
			t.Errorf("bucket %s emitted %d times, want once", time.Unix(start, 0).UTC().Format(time.TimeOnly), len(vs))
			continue
		}
		if vs[0].GetTotal() != n || vs[0].GetEndpoints()["GET /a"] != n {
			t.Errorf("bucket %s = %d (%v), want %d", time.Unix(start, 0).UTC().Format(time.TimeOnly), vs[0].GetTotal(), vs[0].GetEndpoints(), n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d buckets emitted, want %d", len(got), len(want))
	}
}

// The open buckets a row holds stay within ceil(grace/step)+1 per
// granularity, however disordered the events.
func TestWindowRowStaysBounded(t *testing.T) {
	w := windows.Config{Specs: []windows.Spec{{Step: time.Minute, Retention: time.Hour}, {Step: time.Hour, Retention: 24 * time.Hour}}, Grace: 150 * time.Second}
	bound := map[int64]int{60: 4, 3600: 2} // ceil(150/60)+1, ceil(150/3600)+1
	row := &activitypb.ClientUsage{Client: "c"}
	rng := rand.New(rand.NewPCG(1, 2))
	now := t0.Add(24 * time.Hour)
	var late int
	for i := range 20000 {
		at := t0.Add(time.Duration(i)*300*time.Millisecond - time.Duration(rng.IntN(400))*time.Second)
		ev := &activitypb.BackendApiActivity{Client: "c", HttpMethod: "GET", Route: fmt.Sprintf("/r%d", rng.IntN(5)), RequestTime: timestamppb.New(at)}
		res := usage.Apply(row, ev, usage.Position{Offset: int64(i)}, w, now)
		late += res.Late
		perStep := map[int64]int{}
		for _, b := range row.GetOpenBuckets() {
			perStep[b.GetStepSeconds()]++
		}
		for step, n := range perStep {
			if n > bound[step] {
				t.Fatalf("event %d: %d open %ds buckets, bound %d", i, n, step, bound[step])
			}
		}
	}
	if late == 0 {
		t.Error("test premise: some events should have been late")
	}
}

// A replayed event changes no bucket and closes nothing; a replay of the
// latest closing event emits that close's buckets again (the crash may have
// lost them), a replay of a later event does not.
func TestWindowReplays(t *testing.T) {
	w := windows.Default()
	row := &activitypb.ClientUsage{Client: "c"}
	now := t0.Add(48 * time.Hour)
	ev := func(at time.Time) *activitypb.BackendApiActivity {
		return &activitypb.BackendApiActivity{Client: "c", HttpMethod: "GET", Route: "/a", RequestTime: timestamppb.New(at)}
	}
	times := []time.Duration{0, 30 * time.Second, 2 * time.Minute, 70 * time.Minute, 71 * time.Minute, 72 * time.Minute}
	var closedAt int64 = -1
	for i, d := range times {
		if res := usage.Apply(row, ev(t0.Add(d)), usage.Position{Partition: 1, Offset: int64(10 + i)}, w, now); len(res.Closed) > 0 {
			closedAt = int64(10 + i)
		}
	}
	if closedAt != 15 {
		t.Fatalf("test premise: the latest close at offset %d, want 15", closedAt)
	}
	before := proto.Clone(row)
	for i := range times {
		res := usage.Apply(row, ev(t0.Add(3*time.Hour)), usage.Position{Partition: 1, Offset: int64(10 + i)}, w, now)
		if res.Applied || len(res.Closed) != 0 || res.Late != 0 {
			t.Errorf("replay of offset %d: %+v, want skipped", 10+i, res)
		}
	}
	if !proto.Equal(before, row) {
		t.Errorf("replays changed the row:\n%v\n%v", before, row)
	}

	// No value cache: the test rewrites the stored row between events.
	gkt, u, _ := startWindowed(t, w, usage.WithValueCache(0))
	out := gkt.NewQueueTracker(windows.Topic(time.Minute))
	// Every consumed offset is below the watermark: all replays.
	row.AppliedOffsets = map[int32]int64{0: 1 << 40}
	row.LastClosed.Partition, row.LastClosed.Offset = 0, 1<<40
	gkt.SetTableValue(usage.Table, "c", row)
	gkt.Consume(string(codecs.ActivityTopic), "c", eventAt("c", "/a", t0.Add(3*time.Hour)))
	got := emitted(out)
	// The latest close (the 13:12 event) closed the 13:10 minute.
	if k := windows.Key("c", t0.Add(70*time.Minute).Unix()); len(got) != 1 || len(got[k]) != 1 || got[k][0].GetTotal() != 1 {
		t.Errorf("replay of the closing event emitted %v, want 13:10's bucket again", got)
	}
	row.LastClosed.Offset = -1 // the close happened before every replayed offset
	gkt.SetTableValue(usage.Table, "c", row)
	gkt.Consume(string(codecs.ActivityTopic), "c", eventAt("c", "/a", t0.Add(3*time.Hour)))
	if got := emitted(out); len(got) != 0 {
		t.Errorf("replay after the close emitted %v", got)
	}
	if s := u.Stats(); s.Replays != 2 || s.Processed != 0 {
		t.Errorf("stats %+v, want 2 replays", s)
	}
	if !proto.Equal(row, gkt.TableValue(usage.Table, "c").(*activitypb.ClientUsage)) {
		t.Error("replays changed the stored row")
	}
}

// Events without a request time, or with one far ahead of the worker's
// clock, are placed at the processing time.
func TestWindowEventTimeFallsBackToProcessingTime(t *testing.T) {
	now := t0.Add(30 * time.Second)
	for name, rt := range map[string]*timestamppb.Timestamp{
		"none":           nil,
		"a day ahead":    timestamppb.New(t0.Add(24 * time.Hour)),
		"before 1970":    timestamppb.New(time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)),
		"grace ahead +1": timestamppb.New(now.Add(time.Minute + time.Nanosecond)),
	} {
		row := &activitypb.ClientUsage{Client: "c"}
		ev := &activitypb.BackendApiActivity{Client: "c", HttpMethod: "GET", Route: "/a", RequestTime: rt}
		usage.Apply(row, ev, usage.Position{}, minutes, now)
		if len(row.OpenBuckets) != 1 || row.OpenBuckets[0].StartUnix != t0.Unix() || row.StreamTimeUnixNano != now.UnixNano() {
			t.Errorf("%s: buckets %v stream time %d, want one at 12:00 and the processing time", name, row.OpenBuckets, row.StreamTimeUnixNano)
		}
	}
	row := &activitypb.ClientUsage{Client: "c"}
	ahead := now.Add(time.Minute) // within grace: believed
	usage.Apply(row, &activitypb.BackendApiActivity{Client: "c", HttpMethod: "GET", RequestTime: timestamppb.New(ahead)}, usage.Position{}, minutes, now)
	if row.StreamTimeUnixNano != ahead.UnixNano() {
		t.Errorf("an event a grace period ahead was moved: stream time %d", row.StreamTimeUnixNano)
	}
}

// Events read in a local zone across its DST switch land in UTC buckets.
func TestWindowBucketsAreUTC(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	w := windows.Config{Specs: []windows.Spec{{Step: time.Hour, Retention: 24 * time.Hour}, {Step: 24 * time.Hour, Retention: 48 * time.Hour}}, Grace: time.Hour}
	row := &activitypb.ClientUsage{Client: "c"}
	for i, local := range []time.Time{
		time.Date(2025, 3, 30, 1, 30, 0, 0, berlin), // CET, 00:30Z
		time.Date(2025, 3, 30, 3, 30, 0, 0, berlin), // CEST, 01:30Z
	} {
		usage.Apply(row, &activitypb.BackendApiActivity{Client: "c", HttpMethod: "GET", RequestTime: timestamppb.New(local)}, usage.Position{Offset: int64(i)}, w, local.Add(time.Hour))
	}
	got := map[string]uint64{}
	for _, b := range row.OpenBuckets {
		got[fmt.Sprintf("%ds@%s", b.StepSeconds, time.Unix(b.StartUnix, 0).UTC().Format("01-02T15:04"))] = b.Total
	}
	want := map[string]uint64{"3600s@03-30T00:00": 1, "3600s@03-30T01:00": 1, "86400s@03-30T00:00": 2}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("buckets %v, want %v", got, want)
	}
}

// Each granularity's closed buckets go to a compacted topic that drops them
// after its retention plus the grace period.
func TestWindowTopicSpecs(t *testing.T) {
	u := usage.New(usage.WithWindows(windows.Config{Specs: windows.DefaultSpecs(), Grace: 5 * time.Minute}))
	specs := map[string]kafka.TopicSpec{}
	for _, s := range u.Topics() {
		specs[s.Name] = s
	}
	for name, retention := range map[string]time.Duration{
		"usage-windows-1m": 48*time.Hour + 5*time.Minute,
		"usage-windows-1h": 2160*time.Hour + 5*time.Minute,
		"usage-windows-1d": 17520*time.Hour + 5*time.Minute,
	} {
		s, ok := specs[name]
		if !ok || !s.Compact || s.Retention != retention {
			t.Errorf("%s: %+v (declared %v), want compact with retention %v", name, s, ok, retention)
		}
	}
	if off := usage.New(usage.WithWindows(windows.Config{})); len(off.Topics()) != len(u.Topics())-3 {
		t.Errorf("windows off still declares windowed topics: %v", off.Topics())
	}
}

// A closed bucket goes to its windowed topic only while the write fence
// passes: a member resumed from a stall, its lease stale, emits nothing
// computed from its stale row, and emits once the lease is confirmed.
func TestClosedBucketsWaitForTheFence(t *testing.T) {
	var stale atomic.Bool
	var asked atomic.Int64
	gkt, _, _ := startWindowed(t, minutes, usage.WithWriteFence(func() error {
		asked.Add(1)
		if stale.Load() {
			return errors.New("lease stale")
		}
		return nil
	}))
	out := gkt.NewQueueTracker(windows.Topic(time.Minute))
	in := string(codecs.ActivityTopic)
	gkt.Consume(in, "c", eventAt("c", "/a", t0))
	gkt.Consume(in, "c", eventAt("c", "/a", t0.Add(time.Second)))

	stale.Store(true)
	done := make(chan struct{})
	go func() {
		defer close(done)
		gkt.Consume(in, "c", eventAt("c", "/a", t0.Add(3*time.Minute))) // closes t0's minute
	}()
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		return asked.Load() > 5, fmt.Sprintf("fence asked %d times", asked.Load())
	})
	if _, _, ok := out.NextRaw(); ok {
		t.Fatal("a closed bucket was emitted while fenced")
	}
	stale.Store(false)
	<-done
	got := emitted(out)
	if vs := got[windows.Key("c", t0.Unix())]; len(vs) != 1 || vs[0].GetTotal() != 2 {
		t.Errorf("t0's bucket emitted as %v once the fence passed, want once with 2 calls", vs)
	}
}

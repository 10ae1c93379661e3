package views_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/tablestore"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/processors/usage"
	"github.com/inarious/inarious/views"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

var testWindows = windows.Config{
	Specs: []windows.Spec{{Step: time.Minute, Retention: 48 * time.Hour}, {Step: time.Hour, Retention: 90 * 24 * time.Hour}},
	Grace: time.Minute,
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }

// stack is the usage group, the usage view and the windowed views on goka's
// tester, the windowed views on real (LevelDB) storage.
type stack struct {
	gkt   *tester.Tester
	win   *views.Windows
	clock *clock
}

func run(t testing.TB, fn func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			t.Errorf("run: %v", err)
		}
	})
}

func newStack(t testing.TB, w windows.Config) *stack {
	t.Helper()
	gkt := tester.New(t)
	c := &clock{now: t0.Add(10 * time.Minute)}
	u := usage.New(usage.WithWindows(w), usage.WithClock(c.Now), usage.WithValueCache(0))
	proc, err := goka.NewProcessor(nil, u.Graph(), goka.WithTester(gkt))
	if err != nil {
		t.Fatal(err)
	}
	run(t, proc.Run)
	kc := kafka.Defaults()
	uv, err := views.NewUsage(kc, t.TempDir(), views.WithViewOptions(goka.WithViewTester(gkt)))
	if err != nil {
		t.Fatal(err)
	}
	run(t, uv.Run)
	dir := t.TempDir()
	win, err := views.NewWindows(kc, w, dir, uv, views.WithNow(c.Now),
		views.WithViewOptions(goka.WithViewTester(gkt), goka.WithViewStorageBuilder(tablestore.Builder(filepath.Join(dir, "ldb"), tablestore.DefaultOptions()))))
	if err != nil {
		t.Fatal(err)
	}
	run(t, win.Run)
	deadline := time.Now().Add(10 * time.Second)
	for !win.Recovered() || !uv.Recovered() {
		if time.Now().After(deadline) {
			t.Fatal("views did not recover")
		}
		time.Sleep(time.Millisecond)
	}
	return &stack{gkt: gkt, win: win, clock: c}
}

func (s *stack) call(client, route string, at time.Time) { s.callStatus(client, route, 0, at) }

// callStatus is a call answered with status (0: none sent).
func (s *stack) callStatus(client, route string, status int32, at time.Time) {
	b, err := proto.Marshal(&activitypb.BackendApiActivity{Client: client, ClientHost: client, HttpMethod: "GET", Route: route,
		HttpStatus: status, RequestTime: timestamppb.New(at)})
	if err != nil {
		panic(err)
	}
	s.gkt.Consume(string(codecs.ActivityTopic), client, b)
}

func describe(bs []windows.Bucket) string {
	var out string
	for _, b := range bs {
		out += fmt.Sprintf("%s %d %v final=%v; ", b.Start.Format("15:04"), b.Total, b.Endpoints, b.Final)
	}
	return out
}

// Closed buckets come from the windowed view, open ones from the row.
func TestSeriesMergesClosedAndOpenBuckets(t *testing.T) {
	s := newStack(t, testWindows)
	s.call("c", "/a", t0.Add(5*time.Second))
	s.call("c", "/b", t0.Add(20*time.Second))
	s.call("c", "/a", t0.Add(70*time.Second))
	s.call("c", "/a", t0.Add(5*time.Minute)) // closes 12:00 and 12:01
	s.call("other", "/a", t0.Add(2*time.Minute))

	got, err := s.win.Series("c", time.Minute, t0, t0.Add(5*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	want := "12:00 2 map[GET /a:1 GET /b:1] final=true; 12:01 1 map[GET /a:1] final=true; 12:05 1 map[GET /a:1] final=false; "
	if describe(got) != want {
		t.Errorf("series\n got %s\nwant %s", describe(got), want)
	}
	// The closed buckets are in the windowed view, not only in the row.
	byGet, err := views.SeriesByGet(s.win, "c", time.Minute, t0, t0.Add(time.Minute))
	if err != nil || describe(byGet) != "12:00 2 map[GET /a:1 GET /b:1] final=true; 12:01 1 map[GET /a:1] final=true; " {
		t.Errorf("by get: %s %v", describe(byGet), err)
	}
	// from and to bound bucket starts, both included.
	got, _ = s.win.Series("c", time.Minute, t0.Add(time.Second), t0.Add(time.Minute))
	if describe(got) != "12:01 1 map[GET /a:1] final=true; " {
		t.Errorf("12:00:01..12:01 = %s, want only 12:01", describe(got))
	}
	hours, _ := s.win.Series("c", time.Hour, t0.Add(-time.Hour), t0.Add(time.Hour))
	if describe(hours) != "12:00 4 map[GET /a:3 GET /b:1] final=false; " {
		t.Errorf("hours = %s", describe(hours))
	}
	if none, err := s.win.Series("nobody", time.Minute, t0, t0.Add(time.Hour)); err != nil || len(none) != 0 {
		t.Errorf("unknown client: %v %v", none, err)
	}
	if _, err := s.win.Series("c", 5*time.Minute, t0, t0.Add(time.Hour)); err == nil {
		t.Error("a step not kept was answered")
	}
}

// Status classes come with every bucket: closed ones from the windowed
// view, open ones and the latest close from the row; Range sums them.
func TestSeriesAndRangeCarryStatusClasses(t *testing.T) {
	s := newStack(t, testWindows)
	s.callStatus("c", "/a", 200, t0.Add(5*time.Second))
	s.callStatus("c", "/a", 404, t0.Add(6*time.Second))
	s.callStatus("c", "/b", 0, t0.Add(7*time.Second))   // no status: no class
	s.callStatus("c", "/b", 503, t0.Add(3*time.Minute)) // closes 12:00
	s.callStatus("c", "/a", 200, t0.Add(3*time.Minute))
	status := func(bs []windows.Bucket) string {
		var out string
		for _, b := range bs {
			out += fmt.Sprintf("%s %v final=%v; ", b.Start.Format("15:04"), b.Status, b.Final)
		}
		return out
	}
	a := codecs.StatusCounts{codecs.Class2xx: 1, codecs.Class4xx: 1}
	closed := fmt.Sprintf("12:00 %v final=true; ", map[string]codecs.StatusCounts{"GET /a": a})
	open := fmt.Sprintf("12:03 %v final=false; ", map[string]codecs.StatusCounts{"GET /a": {codecs.Class2xx: 1}, "GET /b": {codecs.Class5xx: 1}})
	got, err := s.win.Series("c", time.Minute, t0, t0.Add(3*time.Minute))
	if err != nil || status(got) != closed+open {
		t.Errorf("series %s, %v\nwant %s", status(got), err, closed+open)
	}
	byGet, _ := views.SeriesByGet(s.win, "c", time.Minute, t0, t0)
	if status(byGet) != closed {
		t.Errorf("by get %s, want %s", status(byGet), closed)
	}
	// 12:00 only in the row's latest close.
	if _, err := s.win.Prune(time.Minute, t0.Add(48*time.Hour+2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.win.Series("c", time.Minute, t0, t0); status(got) != closed {
		t.Errorf("from the latest close %s, want %s", status(got), closed)
	}
	s.clock.Set(t0.Add(3*time.Minute + 30*time.Second))
	sum, err := s.win.Range("c", time.Hour)
	want := map[string]codecs.StatusCounts{"GET /a": {codecs.Class2xx: 2, codecs.Class4xx: 1}, "GET /b": {codecs.Class5xx: 1}}
	if err != nil || len(sum.Status) != 2 || sum.Status["GET /a"] != want["GET /a"] || sum.Status["GET /b"] != want["GET /b"] || sum.Endpoints["GET /b"] != 2 {
		t.Errorf("last hour: %v %v %v, want classes %v", sum.Endpoints, sum.Status, err, want)
	}
}

// Range sums the buckets of the last window relative to now, and moves
// with the clock (a hopping range answered from tumbling buckets).
func TestRangeIsRelativeToNow(t *testing.T) {
	s := newStack(t, testWindows)
	for i := range 10 {
		s.call("c", "/a", t0.Add(time.Duration(i)*time.Minute+30*time.Second)) // one call per minute 12:00..12:09
	}
	s.call("c", "/b", t0.Add(9*time.Minute+40*time.Second))
	cases := []struct {
		now    time.Time
		window time.Duration
		total  uint64
		from   time.Time
	}{
		// Buckets starting in [12:04:50, 12:09:50]: 12:05..12:09.
		{t0.Add(9*time.Minute + 50*time.Second), 5 * time.Minute, 6, t0.Add(5 * time.Minute)},
		// Ten minutes later only the newest are within the last 15.
		{t0.Add(20 * time.Minute), 15 * time.Minute, 6, t0.Add(5 * time.Minute)},
		{t0.Add(20 * time.Minute), time.Hour, 11, t0.Add(-40 * time.Minute)},
		// Beyond the minutes' retention: hour buckets, the open 12:00 one included.
		{t0.Add(20 * time.Minute), 72 * time.Hour, 11, t0.Add(-71 * time.Hour)},
		{t0.Add(30 * time.Minute), 5 * time.Minute, 0, t0.Add(25 * time.Minute)},
	}
	for _, c := range cases {
		s.clock.Set(c.now)
		sum, err := s.win.Range("c", c.window)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Total != c.total || !sum.From.Equal(c.from) || !sum.To.Equal(c.now) {
			t.Errorf("last %v at %s: %d calls from %s to %s, want %d from %s", c.window, c.now.Format("15:04:05"),
				sum.Total, sum.From.Format("15:04:05"), sum.To.Format("15:04:05"), c.total, c.from.Format("15:04:05"))
		}
	}
	s.clock.Set(t0.Add(9*time.Minute + 50*time.Second))
	if sum, _ := s.win.Range("c", 2*time.Minute); sum.Endpoints["GET /b"] != 1 || sum.Endpoints["GET /a"] != 2 {
		t.Errorf("last 2 minutes by endpoint: %v", sum.Endpoints)
	}
	if _, err := s.win.Range("c", 90*time.Second); err == nil {
		t.Error("a window no kept step divides was answered")
	}
}

// A bucket in the row's latest close and in the windowed view is counted
// once; one only in the row's latest close (its record not yet in the view)
// is served from there.
func TestSeriesUsesRowsLatestCloseUntilTheViewHasIt(t *testing.T) {
	s := newStack(t, testWindows)
	s.call("c", "/a", t0.Add(5*time.Second))
	s.call("c", "/a", t0.Add(3*time.Minute)) // closes 12:00: in the view and in last_closed
	got, _ := s.win.Series("c", time.Minute, t0, t0.Add(3*time.Minute))
	if describe(got) != "12:00 1 map[GET /a:1] final=true; 12:03 1 map[GET /a:1] final=false; " {
		t.Errorf("series %s", describe(got))
	}
	// Take 12:00 out of the view's storage, as if its record were still on the way.
	if _, err := s.win.Prune(time.Minute, t0.Add(48*time.Hour+2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, _ = s.win.Series("c", time.Minute, t0, t0.Add(3*time.Minute))
	if describe(got) != "12:00 1 map[GET /a:1] final=true; 12:03 1 map[GET /a:1] final=false; " {
		t.Errorf("without the view's record: %s", describe(got))
	}
}

// The pruner deletes buckets beyond the retention from local storage, for
// every client, and keeps the rest.
func TestPruneDeletesBucketsBeyondRetention(t *testing.T) {
	s := newStack(t, testWindows)
	topic := windows.Topic(time.Minute)
	// A client that is another's name plus a NUL sorts between its keys and the next client's.
	clients := []string{"a", "a\x00b", "b", "c"}
	for _, c := range clients {
		for m := range 5 {
			s.gkt.Consume(topic, windows.Key(c, t0.Add(time.Duration(m)*time.Minute).Unix()), &activitypb.WindowCounts{Total: 1})
		}
	}
	// 48 h retention and a step of margin: at 12:03 two days later, 12:00 and 12:01 go.
	n, err := s.win.Prune(time.Minute, t0.Add(48*time.Hour+3*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2*len(clients) {
		t.Errorf("pruned %d, want %d", n, 2*len(clients))
	}
	for _, c := range clients {
		got, err := views.SeriesByGet(s.win, c, time.Minute, t0, t0.Add(5*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || !got[0].Start.Equal(t0.Add(2*time.Minute)) {
			t.Errorf("%q keeps %s, want 12:02..12:04", c, describe(got))
		}
	}
	if n, _ := s.win.Prune(time.Minute, t0.Add(48*time.Hour+3*time.Minute)); n != 0 {
		t.Errorf("second prune deleted %d", n)
	}
}

// BenchmarkSeries answers 24 h (and 1 h) of minute buckets for one client
// from a view holding 24 h of minutes for 200 clients (288,000 keys on
// LevelDB), plus the client's row: one range scan against one Get per
// bucket.
func BenchmarkSeries(b *testing.B) {
	s := newStack(b, testWindows)
	const clients = 200
	topic := windows.Topic(time.Minute)
	day := t0.Add(-24 * time.Hour)
	for i := range clients {
		c := fmt.Sprintf("10.0.0.%d", i)
		for m := range 24 * 60 {
			s.gkt.Consume(topic, windows.Key(c, day.Add(time.Duration(m)*time.Minute).Unix()),
				&activitypb.WindowCounts{Total: 3, Endpoints: map[string]uint64{"GET /users/{id}": 2, "POST /users": 1}})
		}
	}
	s.call("10.0.0.7", "/a", t0.Add(time.Second))
	s.clock.Set(t0.Add(time.Minute))
	for _, q := range []struct {
		name string
		fn   func(*views.Windows, string, time.Duration, time.Time, time.Time) ([]windows.Bucket, error)
		from time.Time
		want int
	}{
		{"24h/range", (*views.Windows).Series, day, 24*60 + 1},
		{"24h/get", views.SeriesByGet, day, 24*60 + 1},
		{"1h/range", (*views.Windows).Series, t0.Add(-time.Hour), 61},
		{"1h/get", views.SeriesByGet, t0.Add(-time.Hour), 61},
	} {
		b.Run(q.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				got, err := q.fn(s.win, "10.0.0.7", time.Minute, q.from, t0)
				if err != nil || len(got) != q.want {
					b.Fatalf("%d buckets, %v", len(got), err)
				}
			}
		})
	}
}

// BenchmarkSeriesAtOneMillionClients is BenchmarkSeries's 24 h range scan
// with the view holding one minute bucket for each of a million other
// clients besides the client's 24 h of minutes: the scan seeks, so its cost
// should not grow with the table. Slow to set up (a million consumes).
func BenchmarkSeriesAtOneMillionClients(b *testing.B) {
	s := newStack(b, testWindows)
	topic := windows.Topic(time.Minute)
	day := t0.Add(-24 * time.Hour)
	one := &activitypb.WindowCounts{Total: 1, Endpoints: map[string]uint64{"GET /users/{id}": 1}}
	for i := range 1_000_000 {
		s.gkt.Consume(topic, windows.Key(fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff), day.Unix()), one)
	}
	const busy = "192.0.2.7"
	for m := range 24 * 60 {
		s.gkt.Consume(topic, windows.Key(busy, day.Add(time.Duration(m)*time.Minute).Unix()),
			&activitypb.WindowCounts{Total: 3, Endpoints: map[string]uint64{"GET /users/{id}": 2, "POST /users": 1}})
	}
	s.call(busy, "/a", t0.Add(time.Second))
	s.clock.Set(t0.Add(time.Minute))
	b.ReportAllocs()
	b.ResetTimer()
	var took []time.Duration
	for b.Loop() {
		start := time.Now()
		got, err := s.win.Series(busy, time.Minute, day, t0)
		took = append(took, time.Since(start))
		if err != nil || len(got) != 24*60+1 {
			b.Fatalf("%d buckets, %v", len(got), err)
		}
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1e3, "p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1e3, "p99-ms")
}

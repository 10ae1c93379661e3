package views_test

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/kafka/kafkatest"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/processors/endpoints"
	"github.com/inarious/inarious/views"
)

const endpointPartitions = 4

// endpointTable writes rows straight to the endpoints table's changelog,
// in the partitions the group puts them in.
type endpointTable struct {
	t  *testing.T
	cl *kgo.Client
}

func newEndpointTable(t *testing.T, cfg kafka.Config) endpointTable {
	t.Helper()
	if err := cfg.EnsureTopics(context.Background(), endpoints.Topics()...); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return endpointTable{t, cl}
}

func (tb endpointTable) put(key string, r *endpoints.Row) {
	tb.t.Helper()
	v, err := endpoints.RowCodec{}.Encode(r)
	if err != nil {
		tb.t.Fatal(err)
	}
	rec := &kgo.Record{Topic: string(endpoints.Table), Key: []byte(key), Value: v, Partition: endpoints.PartitionOf(key, endpointPartitions)}
	if err := tb.cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
		tb.t.Fatal(err)
	}
}

// row has calls calls of status class, durations ms (one call each) and
// the given clients.
func row(calls uint64, class int, ms []int, clients ...string) *endpoints.Row {
	r := endpoints.NewRow()
	r.Calls = calls
	r.Status[class] = calls
	for _, d := range ms {
		r.Latency.Add(int64(d) * 1000)
	}
	for _, c := range clients {
		r.Clients.Add(c)
	}
	return r
}

// span is the durations from, from+1, ... to-1 ms.
func span(from, to int) []int {
	var out []int
	for d := from; d < to; d++ {
		out = append(out, d)
	}
	return out
}

func runEndpoints(t *testing.T, cfg kafka.Config, dir string, now time.Time) (*views.Endpoints, func()) {
	t.Helper()
	v, err := views.NewEndpoints(cfg, windows.Default(), dir, views.WithLogger(quiet), views.WithNow(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("view: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	waitFor(t, "endpoints view recovered", v.Recovered)
	return v, stop
}

// list pages through order limit rows at a time.
func list(t *testing.T, v views.EndpointReader, order views.EndpointOrder, limit int) []string {
	t.Helper()
	var out []string
	var after *views.EndpointCursor
	for range 100 {
		p, err := v.Endpoints(order, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range p.Rows {
			out = append(out, s.Endpoint)
		}
		if len(p.Rows) < limit {
			return out
		}
		c := order.Cursor(p.Rows[len(p.Rows)-1])
		after = &c
	}
	t.Fatal("paging does not end")
	return nil
}

func near(got, want, rel float64) bool { return math.Abs(got-want) <= rel*want }

func TestEndpointsViewAnswersEveryRead(t *testing.T) {
	cfg := kafkatest.Config(t, endpointPartitions)
	tb := newEndpointTable(t, cfg)
	now := time.Now().UTC().Truncate(time.Minute).Add(30 * time.Second)
	minute := now.Truncate(time.Minute)

	const users = "GET /users/{id}"
	getUser := row(290, codecs.Class2xx, span(1, 101), "a", "b", "c")
	getUser.Calls, getUser.Status[codecs.Class5xx] = 300, 10
	tb.put(users, getUser)
	tb.put("GET /healthz", row(1000, codecs.Class2xx, slices.Repeat([]int{1}, 1000)))
	post := row(25, codecs.Class4xx, slices.Repeat([]int{500}, 50))
	post.Calls, post.Status[codecs.Class2xx] = 50, 25
	tb.put("POST /users", post)
	tb.put("DELETE /users/{id}", row(50, codecs.Class2xx, nil))
	// Two minute buckets far apart in latency, an hour bucket and one
	// bucket of another endpoint.
	older := minute.Add(-2 * time.Minute)
	tb.put(endpoints.BucketKey(users, time.Minute, older.Unix()), row(100, codecs.Class2xx, span(1, 101), "a"))
	tb.put(endpoints.BucketKey(users, time.Minute, minute.Add(-time.Minute).Unix()), row(100, codecs.Class5xx, span(1000, 1100), "b"))
	tb.put(endpoints.BucketKey(users, time.Hour, now.Truncate(time.Hour).Unix()), row(7, codecs.Class2xx, nil))
	tb.put(endpoints.BucketKey("POST /users", time.Minute, older.Unix()), row(3, codecs.Class2xx, nil))

	v, stop := runEndpoints(t, cfg, t.TempDir(), now)

	s, ok, err := v.Endpoint(users)
	if err != nil || !ok || s.Calls != 300 || s.DistinctClients != 3 || !near(s.ErrorRate, 10.0/300, 1e-9) || !near(s.Latency.P99, 99, 0.02) {
		t.Errorf("Endpoint(%q) = %+v %v %v", users, s, ok, err)
	}
	if _, ok, err := v.Endpoint("GET /nowhere"); ok || err != nil {
		t.Errorf("unknown endpoint: ok %v err %v", ok, err)
	}

	want := map[views.EndpointOrder][]string{
		views.ByCalls:     {"GET /healthz", users, "DELETE /users/{id}", "POST /users"},
		views.ByP99:       {"POST /users", users, "GET /healthz", "DELETE /users/{id}"},
		views.ByErrorRate: {"POST /users", users, "DELETE /users/{id}", "GET /healthz"},
	}
	waitFor(t, "index of the cold start", func() bool { return slices.Equal(list(t, v, views.ByCalls, 10), want[views.ByCalls]) })
	for order, w := range want {
		for _, limit := range []int{1, 3, 4, 10} {
			if got := list(t, v, order, limit); !slices.Equal(got, w) {
				t.Errorf("%s by %d: %q, want %q", order, limit, got, w)
			}
		}
	}
	if p, _ := v.Endpoints(views.ByCalls, nil, 2); p.Endpoints != 4 || len(p.Rows) != 2 {
		t.Errorf("page %+v, want 2 rows of 4 endpoints", p)
	}

	series, err := v.EndpointSeries(users, time.Minute, now.Add(-10*time.Minute), now)
	if err != nil || len(series) != 2 {
		t.Fatalf("series %+v %v", series, err)
	}
	if b := series[0]; !b.Start.Equal(older) || b.Step != time.Minute || b.Calls != 100 || !b.Final || !near(b.Latency.P99, 99, 0.02) {
		t.Errorf("first bucket %+v", b)
	}
	// Its end plus grace plus the flush slack is after now.
	if b := series[1]; b.Final || b.ErrorRate != 1 || !near(b.Latency.P50, 1050, 0.02) {
		t.Errorf("second bucket %+v", b)
	}
	var qe *windows.QueryError
	if _, err := v.EndpointSeries(users, 5*time.Minute, now.Add(-time.Hour), now); !errors.As(err, &qe) {
		t.Errorf("step not kept: %v, want a QueryError", err)
	}

	// The range merges sketches: its p99 is that of the 200 calls (near
	// 1098 ms), not the mean of the buckets' p99s (near 600).
	r, err := v.EndpointRange(users, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if r.Calls != 200 || r.Latency.Timed != 200 || r.DistinctClients != 2 || r.ErrorRate != 0.5 || !near(r.Latency.P99, 1098, 0.02) ||
		!near(r.Latency.P90, 1080, 0.02) || r.Step != time.Minute || !r.From.Equal(minute.Add(-4*time.Minute)) || !r.To.Equal(now) {
		t.Errorf("range %+v", r)
	}
	// 72h is beyond the minutes' retention: the hour buckets answer.
	if r, err := v.EndpointRange(users, 72*time.Hour); err != nil || r.Calls != 7 || r.Step != time.Hour {
		t.Errorf("hour range %+v %v", r, err)
	}

	// Live: the index follows writes after recovery.
	tb.put("DELETE /users/{id}", row(5000, codecs.Class2xx, nil))
	waitFor(t, "index after a live update", func() bool {
		return slices.Equal(list(t, v, views.ByCalls, 2), []string{"DELETE /users/{id}", "GET /healthz", users, "POST /users"})
	})
	stop()
}

// TestEndpointsIndexLoadsLocalStorage: on a warm start goka replays
// nothing, so the index must come from what local storage holds, bucket
// rows skipped.
func TestEndpointsIndexLoadsLocalStorage(t *testing.T) {
	cfg := kafkatest.Config(t, endpointPartitions)
	tb := newEndpointTable(t, cfg)
	now := time.Now().UTC()
	names := []string{"GET /a", "GET /a b", "GET /b", "PUT /c/{id}", "POST /d"}
	for i, e := range names {
		tb.put(e, row(uint64(10*(i+1)), codecs.Class2xx, nil))
		tb.put(endpoints.BucketKey(e, time.Minute, now.Truncate(time.Minute).Unix()), row(1, codecs.Class2xx, nil))
	}
	want := slices.Clone(names)
	slices.Reverse(want)
	dir := t.TempDir()
	v, stop := runEndpoints(t, cfg, dir, now)
	waitFor(t, "cold index", func() bool { return slices.Equal(list(t, v, views.ByCalls, 2), want) })
	stop()

	v, stop = runEndpoints(t, cfg, dir, now)
	if got := list(t, v, views.ByCalls, 2); !slices.Equal(got, want) {
		t.Fatalf("warm index %q, want %q", got, want)
	}
	if p, _ := v.Endpoints(views.ByCalls, nil, 1); p.Endpoints != len(names) {
		t.Errorf("warm index counts %d endpoints, want %d", p.Endpoints, len(names))
	}
	stop()
}

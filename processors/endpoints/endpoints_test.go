package endpoints_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/kafka/kafkatest"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/processors/endpoints"
)

// call is one event the tests produce, with what the table should count.
type call struct {
	client   string
	endpoint string // route
	status   int32
	duration int64
	at       time.Time
}

func (c call) event() *activitypb.BackendApiActivity {
	return &activitypb.BackendApiActivity{Client: c.client, HttpMethod: "GET", Route: c.endpoint, HttpStatus: c.status,
		DurationUs: c.duration, RequestTime: timestamppb.New(c.at)}
}

// calls are n events over a few endpoints, clients, statuses and durations.
func calls(n int, at time.Time) []call {
	routes := []string{"/a", "/b/{id}", "/c"}
	out := make([]call, n)
	for i := range out {
		out[i] = call{client: fmt.Sprintf("client-%d", i%37), endpoint: routes[i%len(routes)],
			status: []int32{200, 201, 404, 500, 302}[i%5], duration: int64(100 + (i*7919)%50000),
			at: at.Add(time.Duration(i%90) * time.Second)}
	}
	return out
}

func produce(t *testing.T, cfg kafka.Config, cs []call) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(cs))
	for i, c := range cs {
		v, err := codecs.Activity{}.Encode(c.event())
		if err != nil {
			t.Fatal(err)
		}
		recs[i] = &kgo.Record{Topic: string(codecs.ActivityTopic), Key: []byte(c.client), Value: v}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// expected is what the table should hold for one row key.
type expected struct {
	calls     uint64
	status    codecs.StatusCounts
	durations []int64
	clients   map[string]bool
}

func expect(cs []call, w windows.Config) map[string]*expected {
	out := map[string]*expected{}
	add := func(key string, c call) {
		e := out[key]
		if e == nil {
			e = &expected{clients: map[string]bool{}}
			out[key] = e
		}
		e.calls++
		class, _ := codecs.StatusClass(c.status)
		e.status[class]++
		e.durations = append(e.durations, c.duration)
		e.clients[c.client] = true
	}
	for _, c := range cs {
		ep := "GET " + c.endpoint
		add(ep, c)
		for _, s := range w.Specs {
			add(endpoints.BucketKey(ep, s.Step, windows.StartUnix(c.at.UnixNano(), s.Step)), c)
		}
	}
	return out
}

func run(t *testing.T, ctx context.Context, cfg kafka.Config, dir string, w windows.Config, id string, opts ...endpoints.Option) (*endpoints.Processor, chan error) {
	t.Helper()
	base := []endpoints.Option{endpoints.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))), endpoints.WithWindows(w),
		endpoints.WithFlushInterval(100 * time.Millisecond), endpoints.WithTransactionalID(id)}
	p := endpoints.New(append(base, opts...)...)
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, cfg, dir, nil) }()
	return p, done
}

// runWithView runs a member and a view of the table until the test ends;
// the member must stop cleanly.
func runWithView(t *testing.T, cfg kafka.Config, w windows.Config, id string, opts ...endpoints.Option) (*endpoints.Processor, *goka.View) {
	t.Helper()
	rctx, stop := context.WithCancel(context.Background())
	p, done := run(t, rctx, cfg, t.TempDir(), w, id, opts...)
	vctx, stopView := context.WithCancel(context.Background())
	t.Cleanup(func() {
		stopView()
		stop()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return p, view(t, vctx, cfg)
}

func view(t *testing.T, ctx context.Context, cfg kafka.Config) *goka.View {
	t.Helper()
	v, err := goka.NewView(cfg.Brokers, endpoints.Table, endpoints.RowCodec{},
		append(cfg.ViewOptions(slog.New(slog.NewTextHandler(io.Discard, nil))), goka.WithViewHasher(endpoints.Hasher), goka.WithViewStorageBuilder(storage.MemoryBuilder()))...)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = v.Run(ctx) }()
	return v
}

// checkRows compares every expected row with the view, exactly for calls
// and classes, within the sketches' bounds for quantiles and clients.
func checkRows(v *goka.View, want map[string]*expected) (bool, string) {
	for key, e := range want {
		got, err := v.Get(key)
		if err != nil {
			return false, err.Error()
		}
		r, _ := got.(*endpoints.Row)
		if r == nil || r.Calls != e.calls {
			calls := uint64(0)
			if r != nil {
				calls = r.Calls
			}
			return false, fmt.Sprintf("%q: %d calls, want %d", key, calls, e.calls)
		}
		if r.Status != e.status {
			return false, fmt.Sprintf("%q: classes %v, want %v", key, r.Status, e.status)
		}
		if n := r.Latency.Count(); n != e.calls {
			return false, fmt.Sprintf("%q: %d durations, want %d", key, n, e.calls)
		}
		sorted := slices.Clone(e.durations)
		slices.Sort(sorted)
		for _, q := range []float64{0.5, 0.9, 0.95, 0.99} {
			exact := float64(sorted[int(q*float64(len(sorted)-1))])
			if got := r.Latency.Quantile(q); math.Abs(got-exact) > endpoints.LatencyRelativeError*exact {
				return false, fmt.Sprintf("%q: p%v %.0f µs, exact %.0f", key, q*100, got, exact)
			}
		}
		if got := r.Clients.Estimate(); got != uint64(len(e.clients)) {
			return false, fmt.Sprintf("%q: %d distinct clients, want %d", key, got, len(e.clients))
		}
	}
	return true, ""
}

// Every event is counted exactly once, in its endpoint's all-time row and
// its bucket of each granularity, through a stop and restart of the member
// in between, with events produced while it was away.
func TestCountsExactlyAcrossRestarts(t *testing.T) {
	cfg := kafkatest.Config(t, 4)
	ctx := context.Background()
	if err := cfg.EnsureTopics(ctx, endpoints.Topics()...); err != nil {
		t.Fatal(err)
	}
	w := windows.Config{Specs: []windows.Spec{{Step: time.Minute, Retention: time.Hour}, {Step: time.Hour, Retention: 24 * time.Hour}},
		Grace: time.Hour}
	at := time.Now().Add(-10 * time.Minute).Truncate(time.Minute)
	all := calls(3000, at)
	dir := t.TempDir()

	produce(t, cfg, all[:1000])
	rctx, stop := context.WithCancel(ctx)
	p1, done := run(t, rctx, cfg, dir, w, "test-member")
	vctx, stopView := context.WithCancel(ctx)
	defer stopView()
	v := view(t, vctx, cfg)
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		ok, msg := checkRows(v, expect(all[:1000], w))
		return ok, fmt.Sprintf("%s (aggregator %+v, group %+v)", msg, p1.AggregatorStats(), p1.Stats())
	})
	produce(t, cfg, all[1000:2000])
	stop()
	if err := <-done; err != nil {
		t.Fatalf("first run: %v", err)
	}
	produce(t, cfg, all[2000:])
	rctx, stop = context.WithCancel(ctx)
	p, done := run(t, rctx, cfg, dir, w, "test-member")
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("second run: %v", err)
		}
	}()
	testutil.Eventually(t, 30*time.Second, func() (bool, string) { return checkRows(v, expect(all, w)) })
	if s := p.Stats(); s.Invalid != 0 {
		t.Errorf("invalid partials: %d", s.Invalid)
	}
}

// Partials go to the partition of their endpoint, buckets included, so one
// member holds all of an endpoint's rows.
func TestBucketKeysPlaceByEndpoint(t *testing.T) {
	ep := "GET /users/{id}"
	k := endpoints.BucketKey(ep, time.Minute, 1_700_000_040)
	if got, step, start, bucket, ok := endpoints.ParseKey(k); !ok || !bucket || got != ep || step != time.Minute || start != 1_700_000_040 {
		t.Fatalf("ParseKey(%q) = %q %v %d %v %v", k, got, step, start, bucket, ok)
	}
	if got, _, _, bucket, ok := endpoints.ParseKey(ep); !ok || bucket || got != ep {
		t.Fatalf("ParseKey(%q) = %q %v %v", ep, got, bucket, ok)
	}
	for _, bad := range []string{"", "x\x00", "x\x00abc", "x\x0000000060\x00-1"} {
		if _, _, _, _, ok := endpoints.ParseKey(bad); ok {
			t.Errorf("ParseKey(%q) ok", bad)
		}
	}
	for n := 1; n <= 64; n *= 4 {
		if a, b := endpoints.PartitionOf(ep, n), endpoints.PartitionOf(k, n); a != b {
			t.Errorf("%d partitions: endpoint in %d, its bucket in %d", n, a, b)
		}
	}
	lo, hi := endpoints.BucketRange(ep, time.Minute, 60, 120)
	if !(lo <= endpoints.BucketKey(ep, time.Minute, 60) && endpoints.BucketKey(ep, time.Minute, 120) < hi &&
		endpoints.BucketKey(ep, time.Minute, 180) >= hi && strings.HasPrefix(hi, ep+"\x00")) {
		t.Errorf("range [%q, %q) does not hold exactly the starts 60..120", lo, hi)
	}
}

// Bucket rows past their granularity's retention are deleted through the
// group (so from the changelog too); all-time rows and younger buckets stay.
func TestExpiredBucketsArePruned(t *testing.T) {
	cfg := kafkatest.Config(t, 2)
	ctx := context.Background()
	if err := cfg.EnsureTopics(ctx, endpoints.Topics()...); err != nil {
		t.Fatal(err)
	}
	w := windows.Config{Specs: []windows.Spec{{Step: time.Minute, Retention: time.Hour}, {Step: time.Hour, Retention: 24 * time.Hour}},
		Grace: 24 * time.Hour}
	old := time.Now().Add(-3 * time.Hour).Truncate(time.Hour)
	cs := calls(300, old)
	produce(t, cfg, cs)
	p, v := runWithView(t, cfg, w, "prune-member")
	want := expect(cs, w)
	testutil.Eventually(t, 30*time.Second, func() (bool, string) { return checkRows(v, want) })

	var minuteKeys []string
	for key := range want {
		if _, step, _, bucket, _ := endpoints.ParseKey(key); bucket && step == time.Minute {
			minuteKeys = append(minuteKeys, key)
		}
	}
	n, err := p.PruneExpired(ctx, cfg, time.Now())
	if err != nil || n != len(minuteKeys) {
		t.Fatalf("PruneExpired = %d, %v; want the %d minute buckets", n, err, len(minuteKeys))
	}
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		for _, k := range minuteKeys {
			if r, err := v.Get(k); err != nil || r != nil {
				return false, fmt.Sprintf("%q still there (%v)", k, err)
			}
		}
		return true, ""
	})
	for key := range want {
		if slices.Contains(minuteKeys, key) {
			delete(want, key)
		}
	}
	if ok, msg := checkRows(v, want); !ok {
		t.Errorf("after pruning: %s", msg)
	}
	if s := p.Stats(); s.Pruned != uint64(len(minuteKeys)) {
		t.Errorf("pruned %d rows, want %d", s.Pruned, len(minuteKeys))
	}
}

// While the write fence fails (a member resumed from a stall, its lease
// stale), partials are not merged into rows, so nothing computed from the
// stale rows reaches the changelog; once it passes, every event is merged,
// exactly.
func TestWriteFenceHoldsMerges(t *testing.T) {
	cfg := kafkatest.Config(t, 2)
	ctx := context.Background()
	if err := cfg.EnsureTopics(ctx, endpoints.Topics()...); err != nil {
		t.Fatal(err)
	}
	w := windows.Config{Specs: []windows.Spec{{Step: time.Minute, Retention: time.Hour}}, Grace: time.Hour}
	var stale atomic.Bool
	var asked atomic.Int64
	stale.Store(true)
	p, v := runWithView(t, cfg, w, "fence-member", endpoints.WithWriteFence(func() error {
		asked.Add(1)
		if stale.Load() {
			return errors.New("lease stale")
		}
		return nil
	}))

	cs := calls(300, time.Now().Add(-5*time.Minute).Truncate(time.Minute))
	produce(t, cfg, cs)
	// The aggregator wrote its partials (Kafka's transactions fence it);
	// the group waits on the fence with them.
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		a := p.AggregatorStats()
		return a.Events == uint64(len(cs)) && asked.Load() > 20, fmt.Sprintf("aggregated %d of %d, fence asked %d times", a.Events, len(cs), asked.Load())
	})
	if s := p.Stats(); s.Merged != 0 {
		t.Fatalf("%d partials merged while fenced", s.Merged)
	}
	if r, err := v.Get("GET /a"); err != nil || r != nil {
		t.Fatalf("row written while fenced: %v (%v)", r, err)
	}
	stale.Store(false)
	testutil.Eventually(t, 30*time.Second, func() (bool, string) { return checkRows(v, expect(cs, w)) })
}

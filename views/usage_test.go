package views_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/kafka/kafkatest"
	"github.com/inarious/inarious/internal/top"
	"github.com/inarious/inarious/processors/usage"
	"github.com/inarious/inarious/views"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// table writes values straight to the usage table's changelog, keyed (and
// so partitioned) as the worker writes them.
type table struct {
	t  *testing.T
	cl *kgo.Client
}

// newTable makes the usage group's topics on an embedded broker (4
// partitions) and a table writing to it.
func newTable(t *testing.T) (kafka.Config, table) {
	t.Helper()
	cfg := kafkatest.Config(t, 4)
	if err := cfg.EnsureTopics(context.Background(), usage.Topics()...); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cfg, table{t, cl}
}

func (tb table) put(client string, total uint64) {
	tb.t.Helper()
	var value []byte
	if total > 0 {
		var err error
		value, err = (&activitypb.ClientUsage{Client: client, Total: total}).MarshalVT()
		if err != nil {
			tb.t.Fatal(err)
		}
	}
	r := &kgo.Record{Topic: string(usage.Table), Key: []byte(client), Value: value}
	if err := tb.cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		tb.t.Fatal(err)
	}
}

// run starts a view on dir and returns it once recovered; it stops with the test
// or when stop is called.
func runView(t *testing.T, cfg kafka.Config, dir string) (*views.Usage, func()) {
	t.Helper()
	v, err := views.NewUsage(cfg, dir, views.WithLogger(quiet))
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
	waitFor(t, "view recovered", v.Recovered)
	return v, stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func clients(rows []top.Row) []string {
	var out []string
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%s=%d", r.Client, r.Total))
	}
	return out
}

// TestIndexFollowsViewThroughColdAndWarmStarts: the index is built from the
// changelog on a cold start, follows live updates and deletes, and on a warm
// start (local storage kept, nothing replayed) is loaded from storage.
func TestIndexFollowsViewThroughColdAndWarmStarts(t *testing.T) {
	cfg, tb := newTable(t)
	want := map[string]uint64{}
	for i := range 200 {
		c := fmt.Sprintf("10.0.%d.%d", i/50, i%50)
		want[c] = uint64(i%13 + 1)
		tb.put(c, want[c])
	}
	expect := func() ([]string, uint64) {
		var sum uint64
		rows := make([]top.Row, 0, len(want))
		for c, total := range want {
			rows = append(rows, top.Row{Client: c, Total: total})
			sum += total
		}
		slices.SortFunc(rows, func(a, b top.Row) int {
			if a.Key().Before(b.Key()) {
				return -1
			}
			return 1
		})
		return clients(rows), sum
	}
	matches := func(v *views.Usage) func() bool {
		return func() bool {
			rows, sum := expect()
			return v.Clients() == len(want) && v.Requests() == sum && slices.Equal(clients(v.Top(top.AllCalls, nil, 1000).Rows), rows)
		}
	}

	dir := t.TempDir()
	v, stop := runView(t, cfg, dir)
	waitFor(t, "index of the cold start", matches(v))

	// Live: an increment, a new client, a delete.
	want["10.0.0.1"] = 50
	tb.put("10.0.0.1", 50)
	want["new"] = 3
	tb.put("new", 3)
	delete(want, "10.0.1.1")
	tb.put("10.0.1.1", 0)
	waitFor(t, "index after live updates", matches(v))
	if top := v.Top(top.AllCalls, nil, 1).Rows; top[0].Client != "10.0.0.1" {
		t.Errorf("top client %v, want 10.0.0.1", top)
	}
	stop()

	// Warm: goka replays nothing, so everything must come from storage.
	v, stop = runView(t, cfg, dir)
	if !matches(v)() {
		rows, _ := expect()
		t.Fatalf("warm start index: %d clients %v…, want %d %v…", v.Clients(), head(clients(v.Top(top.AllCalls, nil, 1000).Rows)), len(want), head(rows))
	}
	want["10.0.0.2"] = 99
	tb.put("10.0.0.2", 99)
	waitFor(t, "index after an update on a warm start", matches(v))
	stop()
}

func head(s []string) []string { return s[:min(len(s), 5)] }

func (tb table) putRow(u *activitypb.ClientUsage) {
	tb.t.Helper()
	value, err := u.MarshalVT()
	if err != nil {
		tb.t.Fatal(err)
	}
	r := &kgo.Record{Topic: string(usage.Table), Key: []byte(u.Client), Value: value}
	if err := tb.cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
		tb.t.Fatal(err)
	}
}

// serviceRanking is what GET /usage?service= must list, from the rows
// themselves: each client with calls to service, its calls and last call
// to it as /usage/{client}?service= shows them, in index order.
func serviceRanking(rows map[string]*activitypb.ClientUsage, service string) []string {
	var ranked []top.Row
	for c, u := range rows {
		doc := codecs.UsageDocOf(u).OfService(service)
		if doc.Total == 0 {
			continue
		}
		var seen int64
		if doc.LastSeen != nil {
			seen = doc.LastSeen.UnixNano()
		}
		ranked = append(ranked, top.Row{Client: c, Total: doc.Total, LastSeen: seen})
	}
	slices.SortFunc(ranked, func(a, b top.Row) int {
		if a.Key().Before(b.Key()) {
			return -1
		}
		return 1
	})
	return rowsWithSeen(ranked)
}

func rowsWithSeen(rows []top.Row) []string {
	out := []string{}
	for _, r := range rows {
		out = append(out, fmt.Sprintf("%s=%d@%d", r.Client, r.Total, r.LastSeen))
	}
	return out
}

// TestServiceRankingsFollowViewThroughColdAndWarmStarts: each service's
// ranking is exact (clients, calls to the service, last call, order,
// counts) after a cold start from the changelog, after live writes (a
// client calling a new service, a row of one service becoming two, a
// delete), and after a warm start from local storage; an unknown service
// lists nobody.
func TestServiceRankingsFollowViewThroughColdAndWarmStarts(t *testing.T) {
	cfg, tb := newTable(t)
	rows := map[string]*activitypb.ClientUsage{}
	at := func(sec int64) *timestamppb.Timestamp { return timestamppb.New(time.Unix(1_750_000_000+sec, 0)) }
	write := func(c string, calls map[string]uint64) {
		u := &activitypb.ClientUsage{Client: c, Endpoints: map[string]*activitypb.EndpointUsage{}}
		i := int64(0)
		for key, n := range calls {
			i++
			u.Endpoints[key] = &activitypb.EndpointUsage{Count: n, LastSeen: at(int64(len(c)) + i + int64(n))}
			u.Total += n
			if u.LastSeen == nil || u.Endpoints[key].LastSeen.AsTime().After(u.LastSeen.AsTime()) {
				u.LastSeen = u.Endpoints[key].LastSeen
			}
		}
		rows[c] = u
		tb.putRow(u)
	}
	for i := range 120 {
		c := fmt.Sprintf("10.0.%d.%d", i/50, i%50)
		calls := map[string]uint64{"GET /users/{id}": uint64(1 + i%7)}
		switch i % 4 {
		case 1:
			calls = map[string]uint64{"shop: GET /orders/{id}": uint64(1 + i%5), "shop: POST /orders": 2}
		case 2:
			calls["shop: GET /orders/{id}"] = uint64(1 + i%9)
			calls["billing: GET /invoices"] = uint64(i % 3) // 0: an endpoint without calls
		}
		write(c, calls)
	}
	services := []string{"", "shop", "billing", "unknown"}
	matches := func(v *views.Usage) func() bool {
		return func() bool {
			for _, svc := range services {
				want := serviceRanking(rows, svc)
				page := v.Top(top.ByService(svc), nil, 1000)
				var calls uint64
				for _, u := range rows {
					calls += codecs.UsageDocOf(u).OfService(svc).Total
				}
				if !slices.Equal(rowsWithSeen(page.Rows), want) || page.Clients != len(want) || page.Requests != calls {
					return false
				}
			}
			return true
		}
	}
	diff := func(v *views.Usage) string {
		var b strings.Builder
		for _, svc := range services {
			page := v.Top(top.ByService(svc), nil, 1000)
			fmt.Fprintf(&b, "service %q: %d clients %d calls\n got %v\nwant %v\n", svc, page.Clients, page.Requests,
				head(rowsWithSeen(page.Rows)), head(serviceRanking(rows, svc)))
		}
		return b.String()
	}

	dir := t.TempDir()
	v, stop := runView(t, cfg, dir)
	waitFor(t, "service rankings of the cold start", matches(v))

	write("10.0.0.0", map[string]uint64{"GET /users/{id}": 40, "billing: GET /invoices": 30}) // a new service for it
	write("10.0.0.4", map[string]uint64{"GET /users/{id}": 5, "auth: POST /token": 1})        // one service becomes two
	write("new", map[string]uint64{"shop: GET /orders/{id}": 100})
	delete(rows, "10.0.0.1")
	tb.put("10.0.0.1", 0)
	services = append(services, "auth")
	waitFor(t, "service rankings after live writes", matches(v))
	if got := v.Top(top.ByService("shop"), nil, 1).Rows; len(got) != 1 || got[0].Client != "new" || got[0].Total != 100 {
		t.Errorf("shop's first client %v, want new with 100 calls", got)
	}
	stop()

	// Warm: goka replays nothing, so every ranking comes from storage.
	v, stop = runView(t, cfg, dir)
	if !matches(v)() {
		t.Fatalf("warm start:\n%s", diff(v))
	}
	write("10.0.0.2", map[string]uint64{"shop: GET /orders/{id}": 7, "GET /users/{id}": 1})
	waitFor(t, "service rankings after a write on a warm start", matches(v))
	stop()
}

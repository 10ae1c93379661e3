package views_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

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
	cfg := kafkatest.Config(t, 4)
	if err := cfg.EnsureTopics(context.Background(), usage.Topics()...); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	tb := table{t, cl}
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

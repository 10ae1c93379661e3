package usage_test

import (
	"context"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/alerts"
	"github.com/inarious/inarious/processors/usage"
)

// The events' request time, and a processing time after it.
var (
	alertEventTime = time.Unix(1700000000, 0)
	alertNow       = time.Unix(1700000030, 0)
)

func statusEvent(client string, status int32, at time.Time) []byte {
	b, err := proto.Marshal(&activitypb.BackendApiActivity{ClientHost: client, HttpMethod: "GET", Route: "/orders/{id}",
		Client: client, HttpStatus: status, RequestTime: timestamppb.New(at)})
	if err != nil {
		panic(err)
	}
	return b
}

// startAlerting runs the usage group with rules, and follows its alerts.
func startAlerting(t *testing.T, rules ...alerts.Rule) (*tester.Tester, *tester.QueueTracker, *alerts.Evaluator) {
	t.Helper()
	set := alerts.NewRules()
	for _, r := range rules {
		set.Set(r)
	}
	ev := alerts.NewEvaluator(set).WithClock(func() time.Time { return alertNow })
	gkt, _ := startUsage(t, usage.WithAlerts(ev), usage.WithClock(func() time.Time { return alertNow }))
	return gkt, gkt.NewQueueTracker(string(alerts.Topic)), ev
}

func drainAlerts(t *testing.T, q *tester.QueueTracker) []*alerts.Alert {
	t.Helper()
	var out []*alerts.Alert
	for {
		key, v, ok := q.Next()
		if !ok {
			return out
		}
		a := v.(*alerts.Alert)
		if key != a.ID {
			t.Errorf("alert keyed %q, id %q", key, a.ID)
		}
		out = append(out, a)
	}
}

func TestUsageAlertFiresOncePerWindowAndThreshold(t *testing.T) {
	rule := alerts.Rule{Name: "alice-minute", Kind: alerts.ClientUsage, Client: "alice", Window: "1m", Limit: 10, Thresholds: []float64{80, 100, 200}}
	gkt, q, ev := startAlerting(t, rule)
	for range 60 {
		gkt.Consume(string(codecs.ActivityTopic), "alice", statusEvent("alice", 200, alertEventTime))
		gkt.Consume(string(codecs.ActivityTopic), "bob", statusEvent("bob", 200, alertEventTime))
	}
	got := drainAlerts(t, q)
	if len(got) != 3 {
		t.Fatalf("60 calls past 8, 10 and 20: %d alerts, want 3: %+v", len(got), got)
	}
	start := time.Unix(1699999980, 0).UTC() // the minute of alertEventTime
	for i, want := range []float64{8, 10, 20} {
		a := got[i]
		if a.Client != "alice" || a.Value != want || a.Threshold != rule.Thresholds[i] || !a.WindowStart.Equal(start) ||
			!a.WindowEnd.Equal(start.Add(time.Minute)) {
			t.Errorf("alert %d = %+v, want alice at %v calls in the minute from %v", i, a, want, start)
		}
		if id := alerts.AlertID(rule.Name, rule.Kind, "alice", time.Minute, start.Unix(), rule.Thresholds[i], rule.Limit); a.ID != id {
			t.Errorf("alert %d id %s, want the deterministic %s", i, a.ID, id)
		}
	}
	if ev.Fired() != 3 {
		t.Errorf("fired %d, want 3", ev.Fired())
	}
	// The next minute is a new window: its own crossings.
	for range 8 {
		gkt.Consume(string(codecs.ActivityTopic), "alice", statusEvent("alice", 200, alertEventTime.Add(time.Minute)))
	}
	if next := drainAlerts(t, q); len(next) != 1 || !next[0].WindowStart.Equal(start.Add(time.Minute)) || next[0].ID == got[0].ID {
		t.Errorf("the next minute's 80 %%: %+v", next)
	}
}

func TestUsageAlertEveryClientRule(t *testing.T) {
	gkt, q, _ := startAlerting(t, alerts.Rule{Name: "any", Kind: alerts.ClientUsage, Client: alerts.Any, Window: "1m", Limit: 3, Thresholds: []float64{100}})
	for _, c := range []string{"a", "b", "b", "b", "c", "c", "c", "c"} {
		gkt.Consume(string(codecs.ActivityTopic), c, statusEvent(c, 200, alertEventTime))
	}
	got := drainAlerts(t, q)
	if len(got) != 2 || got[0].Client != "b" || got[1].Client != "c" {
		t.Errorf("alerts %+v, want b's and c's", got)
	}
}

func TestUsageErrorRateAlert(t *testing.T) {
	gkt, q, _ := startAlerting(t, alerts.Rule{Name: "bob-errors", Kind: alerts.ClientErrorRate, Client: "bob", Window: "1m",
		Thresholds: []float64{50}, MinCalls: 4})
	send := func(status int32) {
		gkt.Consume(string(codecs.ActivityTopic), "bob", statusEvent("bob", status, alertEventTime))
	}
	send(500)
	send(404)
	send(0) // no status: not among the calls the rate is over
	send(500)
	if got := drainAlerts(t, q); len(got) != 0 {
		t.Fatalf("3 calls with a status, fewer than min_calls: %+v", got)
	}
	send(200) // 3 of 4 failed: 75 %
	got := drainAlerts(t, q)
	if len(got) != 1 || got[0].Value != 75 {
		t.Fatalf("alerts %+v, want one at 75 %%", got)
	}
	// Back under 50 % and over it again: the same window fired already.
	for range 4 {
		send(200)
	}
	for range 6 {
		send(503)
	}
	if more := drainAlerts(t, q); len(more) != 0 {
		t.Errorf("the window fired again: %+v", more)
	}
}

func TestUsageAlertFiredAgainOnReplay(t *testing.T) {
	rule := alerts.Rule{Name: "alice-minute", Kind: alerts.ClientUsage, Client: "alice", Window: "1m", Limit: 5, Thresholds: []float64{100}}
	gkt, q, _ := startAlerting(t, rule)
	for range 5 {
		gkt.Consume(string(codecs.ActivityTopic), "alice", statusEvent("alice", 200, alertEventTime))
	}
	first := drainAlerts(t, q)
	if len(first) != 1 {
		t.Fatalf("alerts %+v", first)
	}
	// A new owner after a crash: its memory is empty, the row already has
	// the events, and they are read again (their offsets are applied).
	row := gkt.TableValue(usage.Table, "alice").(*activitypb.ClientUsage)
	gkt2, q2, _ := startAlerting(t, rule)
	gkt2.SetTableValue(usage.Table, "alice", row)
	for range 3 {
		gkt2.Consume(string(codecs.ActivityTopic), "alice", statusEvent("alice", 200, alertEventTime))
	}
	again := drainAlerts(t, q2)
	if len(again) != 1 || again[0].ID != first[0].ID {
		t.Fatalf("replayed: %+v, want one alert with id %s", again, first[0].ID)
	}
	if v := gkt2.TableValue(usage.Table, "alice").(*activitypb.ClientUsage); v.Total != 5 {
		t.Errorf("replays counted: total %d", v.Total)
	}
}

// BenchmarkProcessWithAlerts is BenchmarkProcess's callback with no rules,
// with rules on other clients only, and with rules on every client (each
// event's buckets are then checked against two rules).
func BenchmarkProcessWithAlerts(b *testing.B) {
	clients := []string{"10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"}
	events := make([][]byte, len(clients))
	for i, c := range clients {
		events[i] = event(c, "GET", "/users/{id}")
	}
	for _, c := range []struct {
		name   string
		client string
	}{{"rules=none", ""}, {"rules=other-clients", "someone-else"}, {"rules=every-client", alerts.Any}} {
		b.Run(c.name, func(b *testing.B) {
			rules := alerts.NewRules()
			if c.client != "" {
				rules.Set(alerts.Rule{Name: "u", Kind: alerts.ClientUsage, Client: c.client, Window: "1m", Limit: 1000, Thresholds: []float64{80, 100, 200}})
				rules.Set(alerts.Rule{Name: "e", Kind: alerts.ClientErrorRate, Client: c.client, Window: "1h", Thresholds: []float64{5}, MinCalls: 10})
			}
			gkt := tester.New(b)
			u := usage.New(usage.WithAlerts(alerts.NewEvaluator(rules)))
			proc, err := goka.NewProcessor(nil, u.Graph(), goka.WithTester(gkt))
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() { _ = proc.Run(ctx) }()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				gkt.Consume(string(codecs.ActivityTopic), clients[i%len(clients)], events[i%len(clients)])
			}
		})
	}
}

package usage_test

import (
	"testing"
	"time"

	"github.com/lovoo/goka/tester"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/alerts"
	"github.com/inarious/inarious/internal/quotas"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/processors/usage"
)

// Times around the events' minute (alertEventTime's, from alertMinute):
// a policy written before it, and two written during it.
var (
	alertMinute  = time.Unix(1699999980, 0)
	beforeMinute = alertMinute.Add(-time.Hour)
	inMinute     = alertMinute.Add(5 * time.Second)
)

// startQuotaAlerting runs the usage group with rules on quotas whose
// policies ix holds (changed by the test while it runs), and follows its
// alerts.
func startQuotaAlerting(t *testing.T, ix *quotas.Index, rules ...alerts.Rule) (*tester.Tester, *tester.QueueTracker) {
	t.Helper()
	set := alerts.NewRules()
	for _, r := range rules {
		if err := r.Validate(windows.Default()); err != nil {
			t.Fatalf("rule %s: %v", r.Name, err)
		}
		set.Set(r)
	}
	ev := alerts.NewEvaluator(set).WithQuotas(ix).WithClock(func() time.Time { return alertNow })
	gkt, _ := startUsage(t, usage.WithAlerts(ev), usage.WithClock(func() time.Time { return alertNow }))
	return gkt, gkt.NewQueueTracker(string(alerts.Topic))
}

func shareRule(name, client, quota string, thresholds ...float64) alerts.Rule {
	return alerts.Rule{Name: name, Kind: alerts.ClientUsage, Client: client, Quota: quota, Thresholds: thresholds}
}

func policy(limits ...quotas.Limit) *quotas.Policy { return &quotas.Policy{Limits: limits} }

// callsOf sends n calls of client to method route at alertEventTime.
func callsOf(gkt *tester.Tester, client, method, route string, n int) {
	b, err := proto.Marshal(&activitypb.BackendApiActivity{Client: client, HttpMethod: method, Route: route, HttpStatus: 200,
		RequestTime: timestamppb.New(alertEventTime)})
	if err != nil {
		panic(err)
	}
	for range n {
		gkt.Consume(string(codecs.ActivityTopic), client, b)
	}
}

// A rule on every client's share of its per-minute quota: under the
// default policy's 10 calls, the 8th call fires 80 % and the 10th 100 %,
// once each whatever follows; the body says which quota, whose policy,
// the limit, the share and the threshold; the next minute fires anew.
func TestQuotaAlertFiresOncePerThresholdAndWindow(t *testing.T) {
	ix := quotas.NewIndex()
	ix.Put(quotas.Default, policy(quotas.Limit{Window: "1m", Limit: 10}), beforeMinute)
	rule := shareRule("share", alerts.Any, "1m", 80, 100)
	gkt, q := startQuotaAlerting(t, ix, rule)
	callsOf(gkt, "alice", "GET", "/x", 30)
	callsOf(gkt, "bob", "GET", "/x", 7)
	got := drainAlerts(t, q)
	if len(got) != 2 {
		t.Fatalf("30 calls past 80 %% and 100 %% of 10 (and 7 of bob's): %d alerts, want 2: %+v", len(got), got)
	}
	for i, want := range []struct{ calls, share, threshold float64 }{{8, 80, 80}, {10, 100, 100}} {
		a := got[i]
		if a.Client != "alice" || a.Value != want.calls || a.Share != want.share || a.Threshold != want.threshold ||
			a.Limit != 10 || a.Quota != "1m" || a.Policy != quotas.Default || !a.WindowStart.Equal(alertMinute) || a.Window != "1m" {
			t.Errorf("alert %d = %+v, want alice at %v calls, %v %% of the default's 10", i, a, want.calls, want.share)
		}
		if id := alerts.QuotaAlertID("share", "alice", "1m", time.Minute, alertMinute.Unix(), want.threshold, 10); a.ID != id {
			t.Errorf("alert %d id %s, want the deterministic %s", i, a.ID, id)
		}
	}
	b, err := proto.Marshal(&activitypb.BackendApiActivity{Client: "alice", HttpMethod: "GET", Route: "/x",
		RequestTime: timestamppb.New(alertEventTime.Add(time.Minute))})
	if err != nil {
		t.Fatal(err)
	}
	for range 8 {
		gkt.Consume(string(codecs.ActivityTopic), "alice", b)
	}
	if next := drainAlerts(t, q); len(next) != 1 || next[0].Threshold != 80 || !next[0].WindowStart.Equal(alertMinute.Add(time.Minute)) {
		t.Errorf("the next minute's 80 %%: %+v", next)
	}
}

// No policy and no default, or a policy without the quota's limit: the
// rule fires nothing. A limit of one endpoint counts that endpoint's
// calls only.
func TestQuotaAlertNeedsAPolicyWithTheLimit(t *testing.T) {
	ix := quotas.NewIndex()
	gkt, q := startQuotaAlerting(t, ix, shareRule("minute", alerts.Any, "1m", 100), shareRule("posts", "carol", "1m POST /users", 50, 100))
	callsOf(gkt, "alice", "GET", "/x", 50)
	if got := drainAlerts(t, q); len(got) != 0 {
		t.Fatalf("no policy and no default: %+v", got)
	}
	ix.Put("alice", policy(quotas.Limit{Window: "1d", Limit: 1}), beforeMinute)
	callsOf(gkt, "alice", "GET", "/x", 5)
	if got := drainAlerts(t, q); len(got) != 0 {
		t.Fatalf("alice's policy limits her day, not her minute: %+v", got)
	}
	ix.Put("carol", policy(quotas.Limit{Window: "1m", Limit: 4, Endpoint: "POST /users"}), beforeMinute)
	callsOf(gkt, "carol", "GET", "/users", 20)
	if got := drainAlerts(t, q); len(got) != 0 {
		t.Fatalf("20 GETs against a limit of POSTs: %+v", got)
	}
	callsOf(gkt, "carol", "POST", "/users", 6)
	got := drainAlerts(t, q)
	if len(got) != 2 || got[0].Value != 2 || got[0].Threshold != 50 || got[1].Value != 4 || got[1].Share != 100 ||
		got[0].Quota != "1m POST /users" || got[0].Policy != "carol" {
		t.Errorf("carol's POSTs at 50 %% and 100 %% of 4: %+v", got)
	}
}

// A policy changed while the processor runs applies from the next event:
// crossings are judged against the limit in force when an event is
// counted. Raised, its thresholds fire as the count reaches them, as
// alerts of their own (another limit, another id); lowered below the
// count, the thresholds the count has passed fire at the next event,
// once.
func TestQuotaAlertPolicyChangeTakesEffect(t *testing.T) {
	ix := quotas.NewIndex()
	ix.Put(quotas.Default, policy(quotas.Limit{Window: "1m", Limit: 10}), beforeMinute)
	gkt, q := startQuotaAlerting(t, ix, shareRule("share", alerts.Any, "1m", 80, 100))
	callsOf(gkt, "alice", "GET", "/x", 9)
	first := drainAlerts(t, q)
	if len(first) != 1 || first[0].Limit != 10 || first[0].Value != 8 {
		t.Fatalf("80 %% of 10: %+v", first)
	}
	ix.Put(quotas.Default, policy(quotas.Limit{Window: "1m", Limit: 20}), inMinute)
	callsOf(gkt, "alice", "GET", "/x", 6) // 15: under 80 % of 20
	if got := drainAlerts(t, q); len(got) != 0 {
		t.Fatalf("10 to 15 calls, 100 %% of the old limit but under 80 %% of 20: %+v", got)
	}
	callsOf(gkt, "alice", "GET", "/x", 3) // 18
	raised := drainAlerts(t, q)
	if len(raised) != 1 || raised[0].Limit != 20 || raised[0].Value != 16 || raised[0].Threshold != 80 || raised[0].ID == first[0].ID {
		t.Fatalf("80 %% of the raised limit: %+v", raised)
	}
	ix.Put("alice", policy(quotas.Limit{Window: "1m", Limit: 5}), inMinute.Add(time.Second))
	callsOf(gkt, "alice", "GET", "/x", 4)
	lowered := drainAlerts(t, q)
	if len(lowered) != 2 || lowered[0].Limit != 5 || lowered[0].Value != 19 || lowered[0].Threshold != 80 || lowered[1].Threshold != 100 ||
		lowered[0].Policy != "alice" {
		t.Fatalf("a limit of 5 at 18 calls: 80 %% and 100 %% at the next call, once: %+v", lowered)
	}
	// A client's own policy deleted: the default applies again, from then.
	ix.Delete("alice", inMinute.Add(2*time.Second))
	callsOf(gkt, "alice", "GET", "/x", 1)
	if back := drainAlerts(t, q); len(back) != 1 || back[0].Limit != 20 || back[0].Threshold != 100 || back[0].Value != 23 {
		t.Errorf("back to the default's 20 at 23 calls: 100 %% once: %+v", back)
	}
}

// A replayed event (a new owner after a crash, the row already counting
// it) fires the thresholds already reached again, with the same ids.
func TestQuotaAlertFiredAgainOnReplay(t *testing.T) {
	ix := quotas.NewIndex()
	ix.Put("alice", policy(quotas.Limit{Window: "1m", Limit: 4}), beforeMinute)
	rule := shareRule("share", "alice", "1m", 100)
	gkt, q := startQuotaAlerting(t, ix, rule)
	callsOf(gkt, "alice", "GET", "/x", 4)
	first := drainAlerts(t, q)
	if len(first) != 1 {
		t.Fatalf("alerts %+v", first)
	}
	row := gkt.TableValue(usage.Table, "alice").(*activitypb.ClientUsage)
	gkt2, q2 := startQuotaAlerting(t, ix, rule)
	gkt2.SetTableValue(usage.Table, "alice", row)
	callsOf(gkt2, "alice", "GET", "/x", 2)
	if again := drainAlerts(t, q2); len(again) != 1 || again[0].ID != first[0].ID {
		t.Fatalf("replayed: %+v, want one alert with id %s", again, first[0].ID)
	}
}

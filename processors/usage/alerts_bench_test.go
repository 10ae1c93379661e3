package usage

import (
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/alerts"
	"github.com/inarious/inarious/internal/quotas"
	"github.com/inarious/inarious/internal/windows"
)

// BenchmarkCheckAlerts is the alert check alone, after an event was
// counted in a row with the default windows: no rules at all, rules on
// other clients, and two rules on every client (usage and error rate, no
// threshold reached: the steady state between crossings).
func BenchmarkCheckAlerts(b *testing.B) {
	now := time.Unix(1700000030, 0)
	ev := &activitypb.BackendApiActivity{Client: "c", HttpMethod: "GET", Route: "/users/{id}", HttpStatus: 200, RequestTime: timestamppb.New(now)}
	for _, c := range []struct{ name, client string }{{"rules=none", ""}, {"rules=other-clients", "someone-else"}, {"rules=every-client", alerts.Any}} {
		b.Run(c.name, func(b *testing.B) {
			rules := alerts.NewRules()
			if c.client != "" {
				rules.Set(alerts.Rule{Name: "u", Kind: alerts.ClientUsage, Client: c.client, Window: "1m", Limit: 1 << 40, Thresholds: []float64{80, 100, 200}})
				rules.Set(alerts.Rule{Name: "e", Kind: alerts.ClientErrorRate, Client: c.client, Window: "1h", Thresholds: []float64{50}, MinCalls: 10})
			}
			p := New(WithAlerts(alerts.NewEvaluator(rules)))
			u := &activitypb.ClientUsage{Client: "c"}
			for i := range 100 {
				Apply(u, ev, Position{Offset: int64(i)}, windows.Default(), now)
			}
			b.ReportAllocs()
			for b.Loop() {
				p.checkAlerts(nil, "c", u, ev, true, 1, now)
			}
		})
	}
}

// BenchmarkCheckQuotaAlerts is BenchmarkCheckAlerts' every-client case
// with the usage rule on a share of the client's quota (80/100/200 % of
// the per-minute limit) instead of a limit of its own: under the default
// policy, under a policy of the client's own among 10,000 (a map lookup
// more), and past its thresholds after the policy changed mid-window (each
// event then looks up the alerts fired, in the evaluator's memory).
func BenchmarkCheckQuotaAlerts(b *testing.B) {
	now := time.Unix(1700000030, 0)
	ev := &activitypb.BackendApiActivity{Client: "c", HttpMethod: "GET", Route: "/users/{id}", HttpStatus: 200, RequestTime: timestamppb.New(now)}
	minute := []quotas.Limit{{Window: "1m", Limit: 1 << 40}, {Window: "1d", Limit: 1 << 40}}
	for _, c := range []struct {
		name    string
		own     bool
		limit   uint64 // of the client's minute; 0: minute
		changed bool
	}{{name: "policy=default"}, {name: "policy=own-of-10000", own: true}, {name: "policy=changed-mid-window-past-thresholds", own: true, limit: 10, changed: true}} {
		b.Run(c.name, func(b *testing.B) {
			rules := alerts.NewRules()
			rules.Set(alerts.Rule{Name: "u", Kind: alerts.ClientUsage, Client: alerts.Any, Window: "1m", Quota: "1m", Thresholds: []float64{80, 100, 200}})
			rules.Set(alerts.Rule{Name: "e", Kind: alerts.ClientErrorRate, Client: alerts.Any, Window: "1h", Thresholds: []float64{50}, MinCalls: 10})
			ix := quotas.NewIndex()
			written := now.Add(-time.Hour)
			ix.Put(quotas.Default, &quotas.Policy{Limits: minute}, written)
			if c.own {
				for i := range 10000 {
					ix.Put("client-"+strconv.Itoa(i), &quotas.Policy{Limits: minute}, written)
				}
				limits := slices.Clone(minute)
				if c.limit != 0 {
					limits[0].Limit = c.limit
				}
				if c.changed {
					written = now.Add(-time.Second)
				}
				ix.Put("c", &quotas.Policy{Limits: limits}, written)
			}
			p := New(WithAlerts(alerts.NewEvaluator(rules).WithQuotas(ix)))
			u := &activitypb.ClientUsage{Client: "c"}
			for i := range 100 {
				Apply(u, ev, Position{Offset: int64(i)}, windows.Default(), now)
			}
			var ctx goka.Context = discardEmits{}
			b.ReportAllocs()
			for b.Loop() {
				p.checkAlerts(ctx, "c", u, ev, true, 1, now)
			}
		})
	}
}

// discardEmits is a goka.Context whose emits go nowhere (only Emit is
// called by the check).
type discardEmits struct{ gokaContext }

// gokaContext names goka.Context for embedding: embedded as is, its field
// would hide its method Context.
type gokaContext = goka.Context

func (discardEmits) Emit(goka.Stream, string, any, ...goka.ContextOption) {}

package usage

import (
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/alerts"
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

package endpoints

import (
	"github.com/lovoo/goka"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/alerts"
)

// WithAlerts evaluates e's endpoint rules (p99 latency and error rate per
// window) on every partial merged into a bucket row, in the member owning
// the endpoint (README, "Alerts").
func WithAlerts(e *alerts.Evaluator) Option { return func(p *Processor) { p.alerts = e } }

// endpointRules are the rules watching the bucket row keyed key, nil for
// an all-time row or without rules on its endpoint and step.
func (p *Processor) endpointRules(key string) (rules []*alerts.Compiled, endpoint string, startUnix int64) {
	snap := p.alerts.Rules()
	if !snap.HasEndpointRules() {
		return nil, "", 0
	}
	endpoint, step, start, bucket, ok := ParseKey(key)
	if !ok || !bucket {
		return nil, "", 0
	}
	own, every := snap.ForEndpoint(endpoint)
	for _, set := range [2][]*alerts.Compiled{own, every} {
		for _, c := range set {
			if c.Step == step {
				rules = append(rules, c)
			}
		}
	}
	return rules, endpoint, start
}

// checkAlerts fires the rules whose threshold the bucket row crossed from
// before to after the merge (applied false: a replayed partial, which
// fires those already crossed, as the crash may have lost their alerts).
func (p *Processor) checkAlerts(ctx goka.Context, rules []*alerts.Compiled, endpoint string, startUnix int64, before []float64, row *Row, applied bool) {
	for j, c := range rules {
		after := observe(c, row)
		for i := range c.Limits {
			if c.Crossed(i, before[j], after, applied) {
				p.alerts.Fire(ctx, c, i, endpoint, startUnix, after)
			}
		}
	}
}

// observeAll is what each rule watches in row.
func observeAll(rules []*alerts.Compiled, row *Row) []float64 {
	out := make([]float64, len(rules))
	for i, c := range rules {
		out[i] = observe(c, row)
	}
	return out
}

// unobserved is a value no threshold fires on: fewer calls than the
// rule's minimum.
const unobserved = -1

// observe is the row's p99 in ms (EndpointP99) or error rate as Summarize
// computes them, unobserved below the rule's minimum calls.
func observe(c *alerts.Compiled, row *Row) float64 {
	if c.Kind == alerts.EndpointP99 {
		n := row.Latency.Count()
		if n == 0 || n < c.MinCalls {
			return unobserved
		}
		return row.Latency.Quantile(0.99) / 1000
	}
	var known uint64
	for _, n := range row.Status {
		known += n
	}
	if known == 0 || known < c.MinCalls {
		return unobserved
	}
	return float64(row.Status[codecs.Class4xx]+row.Status[codecs.Class5xx]) / float64(known)
}

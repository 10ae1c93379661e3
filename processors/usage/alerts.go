package usage

import (
	"time"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/alerts"
	"github.com/inarious/inarious/internal/windows"
)

// WithAlerts evaluates e's client rules (usage and error rate per window)
// on every event counted, in the member owning the client: a crossing
// fires once (README, "Alerts").
func WithAlerts(e *alerts.Evaluator) Option { return func(p *Processor) { p.alerts = e } }

// checkAlerts fires the client's rules whose threshold ev crossed in its
// bucket of the rule's step. A replayed event (applied false) fires those
// already crossed in the open buckets and the last closed ones: the crash
// may have lost their alerts (same IDs). Without rules on any client it
// costs one atomic load.
func (p *Processor) checkAlerts(ctx goka.Context, client string, usage *activitypb.ClientUsage, ev *activitypb.BackendApiActivity, applied bool, now time.Time) {
	rules := p.alerts.Rules()
	if !rules.HasClientRules() {
		return
	}
	own, every := rules.ForClient(client)
	if len(own)+len(every) == 0 {
		return
	}
	at := eventTime(ev, now, p.windows.Grace)
	class, classed := codecs.StatusClass(ev.GetHttpStatus())
	check := func(c *alerts.Compiled, b *activitypb.WindowBucket) {
		if b.StepSeconds != c.StepSeconds() {
			return
		}
		added := applied && b.StartUnix == windows.StartUnix(at, c.Step)
		before, value := observe(c, b, added, class, classed)
		for i := range c.Limits {
			if c.Crossed(i, before, value, applied) {
				p.alerts.Fire(ctx, c, i, client, b.StartUnix, value)
			}
		}
	}
	for _, set := range [2][]*alerts.Compiled{own, every} {
		for _, c := range set {
			for _, b := range usage.OpenBuckets {
				check(c, b)
			}
			if !applied {
				for _, b := range usage.GetLastClosed().GetBuckets() {
					check(c, b)
				}
			}
		}
	}
}

// unobserved is a value no threshold fires on: a rate over fewer calls
// than the rule's minimum.
const unobserved = -1

// observe is what c watches in b before and after the event (added: the
// event was counted in b, with its status class).
func observe(c *alerts.Compiled, b *activitypb.WindowBucket, added bool, class int, classed bool) (before, after float64) {
	if c.Kind == alerts.ClientUsage {
		after = float64(b.Total)
		if added {
			return after - 1, after
		}
		return after, after
	}
	if !b.StatusClassed {
		return unobserved, unobserved
	}
	failed, known := bucketErrors(b)
	after = rate(failed, known, c.MinCalls)
	if !added || !classed {
		return after, after
	}
	if class == codecs.Class4xx || class == codecs.Class5xx {
		failed--
	}
	return rate(failed, known-1, c.MinCalls), after
}

// rate is failed over known calls, unobserved below minCalls.
func rate(failed, known, minCalls uint64) float64 {
	if known < minCalls || known == 0 {
		return unobserved
	}
	return float64(failed) / float64(known)
}

// bucketErrors are b's failed calls (4xx, 5xx) and its calls with a known
// status, from its packed pairs (2xx calls have none).
func bucketErrors(b *activitypb.WindowBucket) (failed, known uint64) {
	known = b.Total
	for i, k := range b.StatusKeys {
		if i >= len(b.StatusCounts) {
			break
		}
		switch k & (1<<classBits - 1) {
		case codecs.Class4xx, codecs.Class5xx:
			failed += b.StatusCounts[i]
		case noStatus:
			known -= min(known, b.StatusCounts[i])
		}
	}
	return failed, known
}

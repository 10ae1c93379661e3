package usage

import (
	"time"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/alerts"
	"github.com/inarious/inarious/internal/quotas"
	"github.com/inarious/inarious/internal/windows"
)

// WithAlerts evaluates e's client rules (usage and error rate per window)
// on every event counted, in the member owning the client: a crossing
// fires once (README, "Alerts").
func WithAlerts(e *alerts.Evaluator) Option { return func(p *Processor) { p.alerts = e } }

// checkAlerts fires the client's rules whose threshold ev crossed in its
// bucket of the rule's step; endpoint is the window id ev was counted
// under. A replayed event (applied false) fires those already crossed in
// the open buckets and the last closed ones: the crash may have lost their
// alerts (same IDs). Without rules on any client it costs one atomic load.
func (p *Processor) checkAlerts(ctx goka.Context, client string, usage *activitypb.ClientUsage, ev *activitypb.BackendApiActivity, applied bool, endpoint uint32, now time.Time) {
	rules := p.alerts.Rules()
	if !rules.HasClientRules() {
		return
	}
	own, every := rules.ForClient(client)
	ownQuota, everyQuota := rules.QuotaRulesFor(client)
	if len(own)+len(every)+len(ownQuota)+len(everyQuota) == 0 {
		return
	}
	at := eventTime(ev, now, p.windows.Grace)
	if len(own)+len(every) > 0 {
		p.checkRules(ctx, own, every, client, usage, ev, applied, at)
	}
	if len(ownQuota)+len(everyQuota) > 0 {
		policy := p.alerts.QuotaFor(client)
		for _, set := range [2][]*alerts.Compiled{ownQuota, everyQuota} {
			for _, c := range set {
				p.checkQuota(ctx, c, client, usage, policy, applied, endpoint, at)
			}
		}
	}
}

// checkRules checks the rules other than those on a quota: own and every
// (ev was counted at at, if applied).
func (p *Processor) checkRules(ctx goka.Context, own, every []*alerts.Compiled, client string, usage *activitypb.ClientUsage, ev *activitypb.BackendApiActivity, applied bool, at int64) {
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

// checkQuota fires the thresholds of c, a rule on a quota, that the
// client's calls in the quota's scope reached, as shares of the limit of
// the policy in force now (README, "Alerts": a policy changed mid-window).
// No policy, or none with that limit, or a limit of 0, fires nothing.
func (p *Processor) checkQuota(ctx goka.Context, c *alerts.Compiled, client string, usage *activitypb.ClientUsage, policy quotas.InForce, applied bool, endpoint uint32, at int64) {
	limit, ok := policy.Limit(c.OnQuota.Scope)
	if !ok || limit == 0 {
		return
	}
	lowest := c.Calls(0, limit)
	check := func(b *activitypb.WindowBucket, added bool) {
		if b.StepSeconds != c.StepSeconds() || float64(b.Total) < lowest {
			return // the scope's calls are at most the bucket's
		}
		calls, inScope := scopeCalls(c.OnQuota, usage, b, endpoint)
		value, before := float64(calls), float64(calls)
		if added && inScope {
			before--
		}
		// Strict for an event applied in a window the policy was in force
		// all along: a threshold fires when the event crosses it. After a
		// change (or on a replay), what the limit in force says is reached
		// fires, once: the evaluator remembers what it fired (and the ID
		// would be the same).
		if applied && policy.Since < b.StartUnix*int64(time.Second) {
			for i := range c.Thresholds {
				if alerts.Crosses(c.Calls(i, limit), before, value, true) {
					p.alerts.FireQuota(ctx, c, i, client, b.StartUnix, value, limit, policy.Policy().Client)
				}
			}
			return
		}
		reached := 0
		for reached < len(c.Thresholds) && value >= c.Calls(reached, limit) {
			reached++
		}
		p.alerts.FireQuotaReached(ctx, c, reached, client, b.StartUnix, value, limit, policy.Policy().Client)
	}
	start := windows.StartUnix(at, c.Step)
	for _, b := range usage.OpenBuckets {
		check(b, applied && b.StartUnix == start)
	}
	if !applied {
		for _, b := range usage.GetLastClosed().GetBuckets() {
			check(b, false)
		}
	}
}

// scopeCalls are the calls of b in q's scope, and whether the endpoint of
// window id endpoint is in it.
func scopeCalls(q *alerts.QuotaScope, usage *activitypb.ClientUsage, b *activitypb.WindowBucket, endpoint uint32) (calls uint64, inScope bool) {
	switch {
	case q.AllCalls():
		return b.Total, true
	case q.EndpointKey != "":
		ep := usage.Endpoints[q.EndpointKey]
		if ep == nil {
			return 0, false
		}
		return countOf(b, ep.WindowId), ep.WindowId == endpoint
	}
	for key, ep := range usage.Endpoints {
		if codecs.InService(key, q.Service) {
			calls += countOf(b, ep.WindowId)
			inScope = inScope || ep.WindowId == endpoint
		}
	}
	return calls, inScope
}

// countOf is b's calls of the endpoint of window id id.
func countOf(b *activitypb.WindowBucket, id uint32) uint64 {
	for i, k := range b.EndpointIds {
		if k == id && i < len(b.Counts) {
			return b.Counts[i]
		}
	}
	return 0
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

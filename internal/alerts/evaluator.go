package alerts

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/internal/quotas"
)

// Evaluator is what a processor group evaluates rules with: the rules, and
// a memory of the alerts this member fired since its last rebalance, so a
// rate that goes back and forth over its threshold, or a replay, fires an
// alert once, not once per event. The memory is only an economy: an alert
// fired again has the same ID, and the deliverer drops it.
type Evaluator struct {
	rules  *Rules
	quotas *quotas.Index
	now    func() time.Time

	mu        sync.Mutex
	fired     map[firing]int64 // what an alert's ID is made of → its window's end, Unix seconds
	lastSweep time.Time

	count atomic.Uint64
}

// NewEvaluator evaluates rules.
func NewEvaluator(rules *Rules) *Evaluator {
	return &Evaluator{rules: rules, now: time.Now, fired: map[firing]int64{}}
}

// WithClock sets the clock of FiredAt and of forgetting ended windows.
func (e *Evaluator) WithClock(now func() time.Time) *Evaluator { e.now = now; return e }

// WithQuotas reads the quota policies of rules on a quota from ix; without
// it those rules fire nothing.
func (e *Evaluator) WithQuotas(ix *quotas.Index) *Evaluator { e.quotas = ix; return e }

// QuotaFor is the quota policy in force for client.
func (e *Evaluator) QuotaFor(client string) quotas.InForce {
	if e == nil || e.quotas == nil {
		return quotas.InForce{}
	}
	return e.quotas.For(client)
}

// Rules are the current rules (nil for a nil Evaluator: no rules).
func (e *Evaluator) Rules() *Snapshot {
	if e == nil {
		return nil
	}
	return e.rules.Current()
}

// Fired is how many alerts this evaluator emitted, repeats included.
func (e *Evaluator) Fired() uint64 {
	if e == nil {
		return 0
	}
	return e.count.Load()
}

// Rebalanced forgets what was fired: partitions moved, and a new owner
// may have to fire again what a crashed one emitted without its commit.
func (e *Evaluator) Rebalanced() {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	clear(e.fired)
}

// Crossed is whether value crossing threshold i of c fires: value is at
// or above it and, for an event or partial just applied, before was below
// it (a crossing). For a replayed input (applied false) the value only
// has to be at or above it: the crash may have lost the alert that
// crossing emitted, and firing again gives the same ID.
func (c *Compiled) Crossed(i int, before, value float64, applied bool) bool {
	return Crosses(c.Limits[i], before, value, applied)
}

// Crosses is whether value fires threshold t: at or above it and, when
// strict, with before below it. A rule on a quota is strict only for an
// event just applied in a window the client's policy was in force all
// along: after a change, what the new limit says is reached fires.
func Crosses(t, before, value float64, strict bool) bool {
	return value >= t && (!strict || before < t)
}

// Fire emits rule c's alert for threshold i on key (a client or an
// endpoint), in the window starting at startUnix, with the observed value,
// to Topic through ctx, unless this member fired it since its last
// rebalance.
func (e *Evaluator) Fire(ctx goka.Context, c *Compiled, i int, key string, startUnix int64, value float64) {
	e.fire(ctx, c, i, key, startUnix, value, c.Limit, "")
}

// FireQuota is Fire for a rule on a quota: limit is the count of the
// quota in the client's policy in force, policy whose it is (the client,
// or quotas.Default). Each limit is an alert of its own.
func (e *Evaluator) FireQuota(ctx goka.Context, c *Compiled, i int, client string, startUnix int64, calls float64, limit uint64, policy string) {
	e.fire(ctx, c, i, client, startUnix, calls, limit, policy)
}

// FireQuotaReached is FireQuota for thresholds 0 to reached-1, all reached
// at calls, that this member has not fired yet: those above the highest it
// has (counts only grow, so it fired those below too). While a window's
// count stays past its thresholds, that is one look-up per event.
func (e *Evaluator) FireQuotaReached(ctx goka.Context, c *Compiled, reached int, client string, startUnix int64, calls float64, limit uint64, policy string) {
	from := reached
	e.mu.Lock()
	for from > 0 {
		if _, ok := e.fired[e.firing(c, from-1, client, startUnix, limit)]; ok {
			break
		}
		from--
	}
	e.mu.Unlock()
	for i := from; i < reached; i++ {
		e.fire(ctx, c, i, client, startUnix, calls, limit, policy)
	}
}

func (e *Evaluator) firing(c *Compiled, i int, key string, startUnix int64, limit uint64) firing {
	return firing{rule: c.Name, kind: c.Kind, key: key, quota: c.Quota, step: c.Step, start: startUnix, threshold: c.Thresholds[i], limit: limit}
}

func (e *Evaluator) fire(ctx goka.Context, c *Compiled, i int, key string, startUnix int64, value float64, limit uint64, policy string) {
	f := e.firing(c, i, key, startUnix, limit)
	if !e.remember(f, startUnix+c.StepSeconds()) {
		return
	}
	a := e.alert(c, f, value, policy)
	e.count.Add(1)
	ctx.Emit(Topic, a.ID, a)
}

func (e *Evaluator) alert(c *Compiled, f firing, value float64, policy string) *Alert {
	start := time.Unix(f.start, 0).UTC()
	a := &Alert{ID: f.id(), Rule: c.Name, Kind: c.Kind, Window: c.Window, WindowStart: start, WindowEnd: start.Add(c.Step),
		Threshold: f.threshold, Limit: f.limit, Value: value, Quota: c.Quota, Policy: policy, FiredAt: e.now().UTC()}
	if c.Kind.ForClients() {
		a.Client = f.key
	} else {
		a.Endpoint = f.key
	}
	switch c.Kind {
	case ClientErrorRate, EndpointErrorRate:
		a.Value = value * 100
	case ClientUsage:
		if f.limit > 0 {
			a.Share = math.Round(value*100_00/float64(f.limit)) / 100
		}
	}
	return a
}

// sweepAfter is how many remembered alerts make Fire forget those whose
// window has ended.
const sweepAfter = 4096

// remember records f, reporting whether it is new. It is checked before
// the ID is hashed: a rate back and forth over its threshold, a replay, or
// a count past a quota that changed mid-window come here on many events.
func (e *Evaluator) remember(f firing, endUnix int64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.fired[f]; ok {
		return false
	}
	if now := e.now(); len(e.fired) >= sweepAfter && now.Sub(e.lastSweep) > time.Minute {
		e.lastSweep = now
		for k, end := range e.fired {
			if end < now.Unix() {
				delete(e.fired, k)
			}
		}
	}
	e.fired[f] = endUnix
	return true
}

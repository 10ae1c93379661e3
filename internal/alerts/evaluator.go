package alerts

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka"
)

// Evaluator is what a processor group evaluates rules with: the rules, and
// a memory of the alerts this member fired since its last rebalance, so a
// rate that goes back and forth over its threshold, or a replay, fires an
// alert once, not once per event. The memory is only an economy: an alert
// fired again has the same ID, and the deliverer drops it.
type Evaluator struct {
	rules *Rules
	now   func() time.Time

	mu        sync.Mutex
	fired     map[string]int64 // alert ID → its window's end, Unix seconds
	lastSweep time.Time

	count atomic.Uint64
}

// NewEvaluator evaluates rules.
func NewEvaluator(rules *Rules) *Evaluator {
	return &Evaluator{rules: rules, now: time.Now, fired: map[string]int64{}}
}

// WithClock sets the clock of FiredAt and of forgetting ended windows.
func (e *Evaluator) WithClock(now func() time.Time) *Evaluator { e.now = now; return e }

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
	t := c.Limits[i]
	return value >= t && (!applied || before < t)
}

// Fire emits rule c's alert for threshold i on key (a client or an
// endpoint), in the window starting at startUnix, with the observed value,
// to Topic through ctx, unless this member fired it since its last
// rebalance.
func (e *Evaluator) Fire(ctx goka.Context, c *Compiled, i int, key string, startUnix int64, value float64) {
	a := e.alert(c, i, key, startUnix, value)
	if !e.remember(a.ID, a.WindowEnd.Unix()) {
		return
	}
	e.count.Add(1)
	ctx.Emit(Topic, a.ID, a)
}

func (e *Evaluator) alert(c *Compiled, i int, key string, startUnix int64, value float64) *Alert {
	start := time.Unix(startUnix, 0).UTC()
	a := &Alert{ID: AlertID(c.Name, c.Kind, key, c.Step, startUnix, c.Thresholds[i], c.Limit), Rule: c.Name, Kind: c.Kind,
		Window: c.Window, WindowStart: start, WindowEnd: start.Add(c.Step), Threshold: c.Thresholds[i], Limit: c.Limit,
		Value: value, FiredAt: e.now().UTC()}
	if c.Kind.ForClients() {
		a.Client = key
	} else {
		a.Endpoint = key
	}
	if c.Kind == ClientErrorRate || c.Kind == EndpointErrorRate {
		a.Value = value * 100
	}
	return a
}

// sweepAfter is how many remembered alerts make Fire forget those whose
// window has ended.
const sweepAfter = 4096

// remember records id, reporting whether it is new.
func (e *Evaluator) remember(id string, endUnix int64) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.fired[id]; ok {
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
	e.fired[id] = endUnix
	return true
}

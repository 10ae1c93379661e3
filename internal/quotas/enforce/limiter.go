// Package enforce decides whether a call is within its client's quota
// policies (internal/quotas): from the count of the current window that the
// windowed usage table holds, plus a local reservation for the calls this
// replica admitted that the table may not show yet; and answers with the
// IETF RateLimit headers, or 429. See the README, "Quotas".
package enforce

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inarious/inarious/internal/metrics"
	"github.com/inarious/inarious/internal/quotas"
	"github.com/inarious/inarious/internal/windows"
)

// Policies reads the policy table (quotas.Table).
type Policies interface {
	Get(client string) (*quotas.Policy, error)
}

// Usage reads a client's windowed usage (views.UsageReader).
type Usage interface {
	Series(client string, step time.Duration, from, to time.Time) ([]windows.Bucket, error)
}

// Config tunes the limiter.
type Config struct {
	// Refresh is how long a client's policy and counts, once read, are
	// used before they are read again.
	Refresh time.Duration
	// Lag bounds how long an admitted call takes to show in the usage
	// table; the calls admitted within it before a read are counted on top
	// of what the read found.
	Lag time.Duration
	// Replicas is how many API replicas share a client's calls: each counts
	// its own calls not yet in the table that many times, standing in for
	// the others' (with an even spread, what all replicas admitted).
	Replicas int
	// Exempt are the route templates ("/healthz") the gate lets through
	// without a decision; their calls count against no limit either.
	Exempt []string
}

// DefaultConfig reads every 100 ms and counts 250 ms of lag, on one replica.
func DefaultConfig() Config {
	return Config{Refresh: 100 * time.Millisecond, Lag: 250 * time.Millisecond, Replicas: 1}
}

// Limiter decides calls. It keeps a small state per client seen lately.
type Limiter struct {
	policies Policies
	usage    Usage
	cfg      Config
	now      func() time.Time
	log      *slog.Logger

	clients   sync.Map // client → *clientState
	lastSweep atomic.Int64

	allowed, refused, readErrors atomic.Uint64
}

// Option configures New.
type Option func(*Limiter)

// WithNow sets the clock (default time.Now).
func WithNow(now func() time.Time) Option { return func(l *Limiter) { l.now = now } }

// WithLogger logs to log (default slog.Default()).
func WithLogger(log *slog.Logger) Option { return func(l *Limiter) { l.log = log } }

// New decides calls by policies and usage.
func New(policies Policies, usage Usage, cfg Config, opts ...Option) *Limiter {
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultConfig().Refresh
	}
	if cfg.Lag < 0 {
		cfg.Lag = 0
	}
	cfg.Replicas = max(cfg.Replicas, 1)
	l := &Limiter{policies: policies, usage: usage, cfg: cfg, now: time.Now, log: slog.Default()}
	for _, o := range opts {
		o(l)
	}
	return l
}

// Counters are the limiter's decisions and failed reads, for /metrics.
func (l *Limiter) Counters() []metrics.Counter {
	return []metrics.Counter{
		{Name: "quota_allowed_total", Help: "Calls a quota policy applied to that were allowed.", Value: l.allowed.Load},
		{Name: "quota_refused_total", Help: "Calls refused with 429 for being over a quota.", Value: l.refused.Load},
		{Name: "quota_read_errors_total", Help: "Reads of a policy or of usage that failed (the call was decided on what was read before, or allowed).", Value: l.readErrors.Load},
	}
}

// LimitState is one limit as it stands for a call.
type LimitState struct {
	quotas.Limit
	// Step is the window's length.
	Step time.Duration
	// Remaining calls in the window after this one (if it was allowed).
	Remaining uint64
	// Reset is when the window ends; ResetSeconds is how long until then,
	// in whole seconds rounded up.
	Reset        time.Time
	ResetSeconds int64
}

// Decision is the answer for one call.
type Decision struct {
	Allowed bool
	// Client names the policy that applied: the client, quotas.Default, or
	// "" when none did.
	Policy string
	// Limits are the limits that applied, in the policy's order (the
	// gate's allowed calls leave them out).
	Limits []LimitState
	// RetryAfter, when refused, is how long until every limit reached resets.
	RetryAfter time.Duration
	// At is when the call was decided.
	At time.Time
	// headers are the values of RateLimit-Policy and RateLimit.
	headers [2][]string
}

// Decide decides a call of client to endpoint ("GET /users/{id}") now.
// With reserve, an allowed call is counted as admitted by this replica
// until the table shows it; without, Decide only looks.
func (l *Limiter) Decide(client, endpoint string, reserve bool) Decision {
	return l.decide(client, endpoint, reserve, true)
}

// decide is Decide, listing the limits only with detail or when refused.
func (l *Limiter) decide(client, endpoint string, reserve, detail bool) Decision {
	now := l.now()
	l.sweep(now)
	s := l.state(client, now)
	d := s.decide(l, client, endpoint, reserve, detail, now)
	d.At = now
	if d.Policy != "" && reserve {
		if d.Allowed {
			l.allowed.Add(1)
		} else {
			l.refused.Add(1)
		}
	}
	return d
}

// state is client's state, made on its first call.
func (l *Limiter) state(client string, now time.Time) *clientState {
	v, ok := l.clients.Load(client)
	if !ok {
		v, _ = l.clients.LoadOrStore(client, &clientState{loaded: make(chan struct{})})
	}
	s := v.(*clientState)
	s.lastUse.Store(now.UnixNano())
	return s
}

// idleAfter is how long a client's state is kept without calls; after it,
// its first call reads the table again, which then shows every call the
// state counted.
func (l *Limiter) idleAfter() time.Duration { return max(10*time.Second, 2*(l.cfg.Lag+l.cfg.Refresh)) }

// sweep forgets the states of clients idle for idleAfter, at most once
// per idleAfter.
func (l *Limiter) sweep(now time.Time) {
	last := l.lastSweep.Load()
	idle := l.idleAfter()
	if now.UnixNano()-last < int64(idle) || !l.lastSweep.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	cutoff := now.Add(-idle).UnixNano()
	l.clients.Range(func(k, v any) bool {
		if v.(*clientState).lastUse.Load() < cutoff {
			l.clients.Delete(k)
		}
		return true
	})
}

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

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/quotas"
)

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
	// FailClosed refuses a client's calls (Decision.Unavailable) while its
	// latest read failed. By default quotas fail open: the calls are
	// decided on the last good read plus the calls admitted here since
	// (allowed, for a client never read).
	FailClosed bool
	// MaxClients bounds the clients whose state is kept (0: DefaultMaxClients).
	// Past it, the states of clients idle for the lag are dropped, then any.
	MaxClients int
}

// DefaultMaxClients is how many clients' states a limiter keeps by default.
const DefaultMaxClients = 100_000

// DefaultConfig reads every 100 ms and counts 250 ms of lag, on one replica.
func DefaultConfig() Config {
	return Config{Refresh: 100 * time.Millisecond, Lag: 250 * time.Millisecond, Replicas: 1}
}

// Limiter decides calls. It keeps a small state per client seen lately.
type Limiter struct {
	src Source
	cfg Config
	now func() time.Time
	log *slog.Logger

	clients   sync.Map // client → *clientState
	size      atomic.Int64
	lastSweep atomic.Int64

	// failing is set from a failed read to the next good one: an outage,
	// logged once when it starts and once when it ends.
	failing       atomic.Bool
	outageFailed  atomic.Uint64
	outageStarted atomic.Int64

	allowed, refused, readErrors, unavailable, evicted atomic.Uint64
}

// Option configures New.
type Option func(*Limiter)

// WithNow sets the clock (default time.Now).
func WithNow(now func() time.Time) Option { return func(l *Limiter) { l.now = now } }

// WithLogger logs to log (default slog.Default()).
func WithLogger(log *slog.Logger) Option { return func(l *Limiter) { l.log = log } }

// New decides calls by the policy table and the windowed usage table.
func New(policies Policies, usage Usage, cfg Config, opts ...Option) *Limiter {
	return NewWithSource(&tableSource{policies: policies, usage: usage, exempt: cfg.Exempt}, cfg, opts...)
}

// NewWithSource decides calls by what src reads.
func NewWithSource(src Source, cfg Config, opts ...Option) *Limiter {
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultConfig().Refresh
	}
	if cfg.Lag < 0 {
		cfg.Lag = 0
	}
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = DefaultMaxClients
	}
	cfg.Replicas = max(cfg.Replicas, 1)
	l := &Limiter{src: src, cfg: cfg, now: time.Now, log: slog.Default()}
	for _, o := range opts {
		o(l)
	}
	return l
}

// Totals are the limiter's counts so far.
type Totals struct {
	// Allowed and Refused are the reserving decisions a policy applied to;
	// Unavailable the calls refused because reads failed (FailClosed).
	Allowed, Refused, Unavailable uint64
	// ReadErrors are the reads that failed.
	ReadErrors uint64
	// Evicted are the client states dropped while their calls still
	// counted, the limiter being full (MaxClients).
	Evicted uint64
}

// Totals are the limiter's counts so far.
func (l *Limiter) Totals() Totals {
	return Totals{Allowed: l.allowed.Load(), Refused: l.refused.Load(), Unavailable: l.unavailable.Load(), ReadErrors: l.readErrors.Load(),
		Evicted: l.evicted.Load()}
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
	// Unavailable: refused because the client's quota could not be read
	// (Config.FailClosed), not for being over it.
	Unavailable bool
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

// Decide decides a call of client to endpoint ("GET /users/{id}") of
// service ("" or codecs.DefaultService: Inarious' own API) now: the limits
// of all calls, of the service's calls and of that endpoint apply. With
// reserve, an allowed call is counted as admitted by this replica until
// the table shows it; without, Decide only looks.
func (l *Limiter) Decide(client, service, endpoint string, reserve bool) Decision {
	return l.decide(client, call{service: codecs.NormalService(service), endpoint: endpoint}, reserve, true)
}

// Admit is Decide reserving, for a gate: the limits are listed only when
// the call is refused, which spares an allocation per allowed call.
func (l *Limiter) Admit(client, service, endpoint string) Decision {
	return l.decide(client, call{service: codecs.NormalService(service), endpoint: endpoint}, true, false)
}

// Look lists every limit of client's policy that applies to some call of
// service, whatever its endpoint, with what remains of it, reserving
// nothing: what a caller needs to decide the service's calls itself.
func (l *Limiter) Look(client, service string) Decision {
	return l.decide(client, call{service: codecs.NormalService(service), anyEndpoint: true}, false, true)
}

// call is what a decision is about.
type call struct {
	service     string // normalized: "" is the default service
	endpoint    string
	anyEndpoint bool // Look: the limits of every endpoint apply
}

// decide is Decide, listing the limits only with detail or when refused.
func (l *Limiter) decide(client string, c call, reserve, detail bool) Decision {
	now := l.now()
	l.sweep(now)
	s := l.state(client, now)
	d := s.decide(l, client, c, reserve, detail, now)
	d.At = now
	switch {
	case d.Unavailable:
		l.unavailable.Add(1)
	case d.Policy != "" && reserve:
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
		v, ok = l.clients.LoadOrStore(client, &clientState{loaded: make(chan struct{})})
		if !ok && l.size.Add(1) > int64(l.cfg.MaxClients) {
			l.evict(client, now)
		}
	}
	s := v.(*clientState)
	s.lastUse.Store(now.UnixNano())
	return s
}

// Clients is how many clients' states the limiter keeps.
func (l *Limiter) Clients() int { return int(l.size.Load()) }

// evict makes room under MaxClients for keep: first by dropping the
// states of clients idle for longer than their calls count (the lag and
// two refreshes), which loses nothing; failing that, any others, whose
// admitted calls are then forgotten (counted in evicted).
func (l *Limiter) evict(keep string, now time.Time) {
	idle := now.Add(-l.cfg.Lag - 2*l.cfg.Refresh).UnixNano()
	for _, lossy := range []bool{false, true} {
		l.clients.Range(func(k, v any) bool {
			if k != keep && (lossy || v.(*clientState).lastUse.Load() < idle) {
				if _, gone := l.clients.LoadAndDelete(k); gone {
					l.size.Add(-1)
					if lossy {
						l.evicted.Add(1)
					}
				}
			}
			return l.size.Load() > int64(l.cfg.MaxClients)
		})
		if l.size.Load() <= int64(l.cfg.MaxClients) {
			return
		}
	}
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
			if _, gone := l.clients.LoadAndDelete(k); gone {
				l.size.Add(-1)
			}
		}
		return true
	})
}

// readFailed counts a failed read and logs the outage it starts, once.
func (l *Limiter) readFailed(client string, err error, now time.Time) {
	l.readErrors.Add(1)
	l.outageFailed.Add(1)
	if l.failing.Load() || !l.failing.CompareAndSwap(false, true) {
		return
	}
	l.outageStarted.Store(now.UnixNano())
	then := "deciding on the last good read and the calls admitted since (fail open)"
	if l.cfg.FailClosed {
		then = "refusing the calls of clients not read (fail closed)"
	}
	l.log.Warn("quota: reads fail; "+then+" until they succeed again", "client", client, "err", err)
}

// readSucceeded ends an outage, logging how long it lasted.
func (l *Limiter) readSucceeded(now time.Time) {
	if !l.failing.Load() || !l.failing.CompareAndSwap(true, false) {
		return
	}
	l.log.Info("quota: reads succeed again", "failed_reads", l.outageFailed.Swap(0),
		"outage", now.Sub(time.Unix(0, l.outageStarted.Load())).Round(time.Millisecond))
}

package enforce

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/quotas"
	"github.com/inarious/inarious/internal/windows"
)

// clientState is what the limiter knows of one client: its policy and, per
// limit, the table's count of the current window and the calls this
// replica admitted lately.
type clientState struct {
	lastUse atomic.Int64 // Unix ns of the latest call, for sweep

	// loaded is closed once the first read is in.
	loaded chan struct{}

	mu         sync.Mutex
	policy     *quotas.Policy // nil: no policy applies
	limits     []*limitState  // parallel to policy.Limits
	readAt     time.Time      // when the counts in limits were read (the read's start)
	refreshing bool
	failed     bool // the latest read failed
	// policyHeaders are the RateLimit-Policy values by service and endpoint.
	policyHeaders map[headerKey][]string
}

// limitState is one limit's count.
type limitState struct {
	limit   quotas.Limit
	step    time.Duration
	bucket  int64  // start (Unix s) of the window counted
	table   uint64 // the table's count of that window at readAt
	admits  []slot // ring of the calls admitted here, by time
	slotLen int64  // ns
	// The limit in the RateLimit headers: its quoted name, and its item of
	// RateLimit-Policy, which never changes.
	name, policyItem string
	service          string // the limit's, normalized
	used             uint64 // while a decision holds the lock
}

// slot counts the calls admitted in [idx*slotLen, (idx+1)*slotLen).
type slot struct {
	idx int64
	n   uint64
}

// decide refreshes the state if it is stale, then decides the call.
// Limits are listed when detail is set or the call is refused.
func (s *clientState) decide(l *Limiter, client string, c call, reserve, detail bool, now time.Time) Decision {
	s.refresh(l, client, now)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed && l.cfg.FailClosed {
		return Decision{Unavailable: true, RetryAfter: l.cfg.Refresh}
	}
	d := Decision{Allowed: true}
	if s.policy == nil {
		return d
	}
	cutoff := s.readAt.Add(-l.cfg.Lag).UnixNano()
	n := uint64(l.cfg.Replicas)
	applied := 0
	for _, ls := range s.limits {
		if !ls.applies(c) {
			continue
		}
		applied++
		if b := windows.StartUnix(now.UnixNano(), ls.step); b != ls.bucket {
			// A new window: nothing counted in it yet, and read it soon.
			ls.bucket, ls.table = b, 0
			clear(ls.admits)
			s.readAt = time.Time{}
		}
		ls.used = ls.table + n*ls.admitted(cutoff)
		if ls.used >= ls.limit.Limit {
			d.Allowed = false
			d.RetryAfter = max(d.RetryAfter, ls.reset().Sub(now))
		}
	}
	if applied == 0 {
		return d
	}
	d.Policy = s.policy.Client
	if detail || !d.Allowed {
		d.Limits = make([]LimitState, 0, applied)
	}
	rl := make([]byte, 0, 32*applied)
	for _, ls := range s.limits {
		if !ls.applies(c) {
			continue
		}
		if d.Allowed && reserve {
			ls.admit(now)
			ls.used += n
		}
		remaining, reset := ls.limit.Limit-min(ls.used, ls.limit.Limit), ls.reset()
		resetSeconds := seconds(reset.Sub(now))
		if d.Limits != nil {
			d.Limits = append(d.Limits, LimitState{Limit: ls.limit, Step: ls.step, Remaining: remaining, Reset: reset, ResetSeconds: resetSeconds})
		}
		if c.anyEndpoint {
			continue // a list, not a call: no headers
		}
		if len(rl) > 0 {
			rl = append(rl, ", "...)
		}
		rl = strconv.AppendInt(append(strconv.AppendUint(append(append(rl, ls.name...), ";r="...), remaining, 10), ";t="...), resetSeconds, 10)
	}
	if !c.anyEndpoint {
		d.headers = [2][]string{s.policyHeader(c), {string(rl)}}
	}
	return d
}

// policyHeader is the RateLimit-Policy of c, made once per endpoint (of a
// service) and policy.
func (s *clientState) policyHeader(c call) []string {
	key := headerKey{c.service, c.endpoint}
	if h, ok := s.policyHeaders[key]; ok {
		return h
	}
	var items []string
	for _, ls := range s.limits {
		if ls.applies(c) {
			items = append(items, ls.policyItem)
		}
	}
	h := []string{strings.Join(items, ", ")}
	if len(s.policyHeaders) < maxPolicyHeaders {
		s.policyHeaders[key] = h
	}
	return h
}

// headerKey is a call's service and endpoint (a struct: no key to build).
type headerKey struct{ service, endpoint string }

// maxPolicyHeaders bounds the endpoints a client's policy headers are kept for.
const maxPolicyHeaders = 64

// applies: a limit of every call (no service, no endpoint), or of c's
// service (a limit without a service names the default one when it names
// an endpoint, as the usage table keys endpoints), of all its calls or of
// c's endpoint.
func (ls *limitState) applies(c call) bool {
	if ls.limit.Service == "" && ls.limit.Endpoint == "" {
		return true
	}
	return ls.service == c.service && (ls.limit.Endpoint == "" || c.anyEndpoint || ls.limit.Endpoint == c.endpoint)
}

func (ls *limitState) reset() time.Time { return time.Unix(ls.bucket, 0).Add(ls.step) }

// admit counts a call admitted at now.
func (ls *limitState) admit(now time.Time) {
	idx := now.UnixNano() / ls.slotLen
	sl := &ls.admits[idx%int64(len(ls.admits))]
	if sl.idx != idx {
		*sl = slot{idx: idx}
	}
	sl.n++
}

// admitted is the calls admitted in slots ending after cutoff (Unix ns),
// those the table may not show yet.
func (ls *limitState) admitted(cutoff int64) uint64 {
	var n uint64
	for _, sl := range ls.admits {
		if sl.n > 0 && (sl.idx+1)*ls.slotLen > cutoff {
			n += sl.n
		}
	}
	return n
}

// refresh reads client's policy and counts when they are older than
// Refresh. One call reads; the others go on with what was read before, or,
// before the first read is in, wait for it.
func (s *clientState) refresh(l *Limiter, client string, now time.Time) {
	s.mu.Lock()
	first := s.readAt.IsZero() && s.policy == nil && s.limits == nil
	if s.refreshing || now.Sub(s.readAt) < l.cfg.Refresh {
		s.mu.Unlock()
		if first {
			<-s.loaded
		}
		return
	}
	s.refreshing = true
	s.mu.Unlock()

	policy, counts, err := l.src.Read(client, now)
	if err != nil {
		l.readFailed(client, err, now)
	} else {
		l.readSucceeded(now)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshing = false
	s.readAt = now
	s.failed = err != nil
	if err == nil {
		s.install(l, policy, counts, now)
	} else {
		s.keepAdmitted()
	}
	select {
	case <-s.loaded:
	default:
		close(s.loaded)
	}
}

// install takes a read: a changed policy starts its limits afresh; each
// limit takes the table's count of its current window.
func (s *clientState) install(l *Limiter, policy *quotas.Policy, counts []uint64, now time.Time) {
	if !samePolicy(s.policy, policy) {
		s.policy, s.limits, s.policyHeaders = policy, nil, map[headerKey][]string{}
		if policy != nil {
			s.limits = make([]*limitState, len(policy.Limits))
			// Slots of a refresh (at most 32 over the lag) spanning the lag
			// and two refreshes: a read may be a refresh old, and take long.
			slotLen := max(l.cfg.Refresh, l.cfg.Lag/32, time.Millisecond)
			slots := int((l.cfg.Lag+2*l.cfg.Refresh)/slotLen) + 2
			for i, lim := range policy.Limits {
				step := lim.Step()
				name := quoted(lim.Name())
				s.limits[i] = &limitState{limit: lim, step: step, slotLen: int64(slotLen), admits: make([]slot, slots), name: name, service: codecs.NormalService(lim.Service),
					policyItem: name + ";q=" + strconv.FormatUint(lim.Limit, 10) + ";w=" + strconv.FormatInt(int64(step/time.Second), 10)}
			}
		}
	}
	for i, ls := range s.limits {
		switch b := windows.StartUnix(now.UnixNano(), ls.step); {
		case b < ls.bucket:
			continue // a call has moved on to the next window meanwhile
		case b > ls.bucket:
			ls.bucket = b
			clear(ls.admits)
		}
		ls.table = counts[i]
	}
}

// samePolicy: the same write of the same limits (a Source that is not the
// table may know no time of writing).
// keepAdmitted, after a failed read, takes the calls admitted here as
// counted, so they keep counting however long reads fail: the client is
// decided on the last good read plus every call admitted since.
func (s *clientState) keepAdmitted() {
	for _, ls := range s.limits {
		ls.table += ls.admitted(math.MinInt64)
		clear(ls.admits)
	}
}

func samePolicy(a, b *quotas.Policy) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Client == b.Client && a.Updated.Equal(b.Updated) && slices.Equal(a.Limits, b.Limits)
}

package enforce

import (
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
	// policyHeaders are the RateLimit-Policy values by endpoint.
	policyHeaders map[string][]string
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
	used             uint64 // while a decision holds the lock
}

// slot counts the calls admitted in [idx*slotLen, (idx+1)*slotLen).
type slot struct {
	idx int64
	n   uint64
}

// decide refreshes the state if it is stale, then decides the call.
// Limits are listed when detail is set or the call is refused.
func (s *clientState) decide(l *Limiter, client, endpoint string, reserve, detail bool, now time.Time) Decision {
	s.refresh(l, client, now)
	s.mu.Lock()
	defer s.mu.Unlock()
	d := Decision{Allowed: true}
	if s.policy == nil {
		return d
	}
	cutoff := s.readAt.Add(-l.cfg.Lag).UnixNano()
	n := uint64(l.cfg.Replicas)
	applied := 0
	for _, ls := range s.limits {
		if !ls.applies(endpoint) {
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
		if !ls.applies(endpoint) {
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
		if len(rl) > 0 {
			rl = append(rl, ", "...)
		}
		rl = strconv.AppendInt(append(strconv.AppendUint(append(append(rl, ls.name...), ";r="...), remaining, 10), ";t="...), resetSeconds, 10)
	}
	d.headers = [2][]string{s.policyHeader(endpoint), {string(rl)}}
	return d
}

// policyHeader is the RateLimit-Policy of a call to endpoint, made once per
// endpoint and policy.
func (s *clientState) policyHeader(endpoint string) []string {
	if h, ok := s.policyHeaders[endpoint]; ok {
		return h
	}
	var items []string
	for _, ls := range s.limits {
		if ls.applies(endpoint) {
			items = append(items, ls.policyItem)
		}
	}
	h := []string{strings.Join(items, ", ")}
	if len(s.policyHeaders) < maxPolicyHeaders {
		s.policyHeaders[endpoint] = h
	}
	return h
}

// maxPolicyHeaders bounds the endpoints a client's policy headers are kept for.
const maxPolicyHeaders = 64

// applies: a limit of all calls, or of this endpoint, of the service the
// calls decided here belong to: Inarious' own API, the default service.
func (ls *limitState) applies(endpoint string) bool {
	return codecs.NormalService(ls.limit.Service) == "" && (ls.limit.Endpoint == "" || ls.limit.Endpoint == endpoint)
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

	policy, counts, ok := l.read(client, now)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshing = false
	s.readAt = now
	if ok {
		s.install(l, policy, counts, now)
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
		s.policy, s.limits, s.policyHeaders = policy, nil, map[string][]string{}
		if policy != nil {
			s.limits = make([]*limitState, len(policy.Limits))
			// Slots of a refresh (at most 32 over the lag) spanning the lag
			// and two refreshes: a read may be a refresh old, and take long.
			slotLen := max(l.cfg.Refresh, l.cfg.Lag/32, time.Millisecond)
			slots := int((l.cfg.Lag+2*l.cfg.Refresh)/slotLen) + 2
			for i, lim := range policy.Limits {
				step := lim.Step()
				name := quoted(lim.Name())
				s.limits[i] = &limitState{limit: lim, step: step, slotLen: int64(slotLen), admits: make([]slot, slots), name: name,
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

func samePolicy(a, b *quotas.Policy) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Client == b.Client && a.Updated.Equal(b.Updated)
}

// read is client's policy (its own, else the default) and, per limit, the
// table's count of the window holding now; ok is false when a read failed.
func (l *Limiter) read(client string, now time.Time) (*quotas.Policy, []uint64, bool) {
	policy, err := l.policies.Get(client)
	if err == nil && policy == nil {
		policy, err = l.policies.Get(quotas.Default)
	}
	if err != nil {
		l.readFailed("quota policy", client, err)
		return nil, nil, false
	}
	if policy == nil {
		return nil, nil, true
	}
	counts := make([]uint64, len(policy.Limits))
	byStep := map[time.Duration]*windows.Bucket{}
	for i, lim := range policy.Limits {
		step := lim.Step()
		b, seen := byStep[step]
		if !seen {
			start := time.Unix(windows.StartUnix(now.UnixNano(), step), 0)
			buckets, err := l.usage.Series(client, step, start, start)
			if err != nil {
				l.readFailed("usage", client, err)
				return nil, nil, false
			}
			if len(buckets) > 0 {
				b = &buckets[0]
			}
			byStep[step] = b
		}
		service := codecs.NormalService(lim.Service)
		switch {
		case b == nil:
		case lim.Endpoint != "":
			counts[i] = b.Endpoints[codecs.ServiceEndpointKey(service, lim.Endpoint)]
		case lim.Service != "": // the default service's too: none of the others'
			only := b.OfService(service)
			counts[i] = only.Total - l.exempted(&only)
		default:
			counts[i] = b.Total - l.exempted(b)
		}
	}
	return policy, counts, true
}

// exempted is the calls of b to exempt routes, which count against no limit.
func (l *Limiter) exempted(b *windows.Bucket) uint64 {
	var n uint64
	if len(l.cfg.Exempt) == 0 {
		return 0
	}
	for ep, c := range b.Endpoints {
		if _, route, ok := strings.Cut(ep, " "); ok && slices.Contains(l.cfg.Exempt, route) {
			n += c
		}
	}
	return min(n, b.Total)
}

func (l *Limiter) readFailed(what, client string, err error) {
	l.readErrors.Add(1)
	l.log.Warn("quota: read failed; deciding on the last read", "read", what, "client", client, "err", err)
}

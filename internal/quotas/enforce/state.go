package enforce

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
}

// limitState is one limit's count.
type limitState struct {
	limit   quotas.Limit
	step    time.Duration
	bucket  int64  // start (Unix s) of the window counted
	table   uint64 // the table's count of that window at readAt
	admits  []slot // ring of the calls admitted here, by time
	slotLen int64  // ns
}

// slot counts the calls admitted in [idx*slotLen, (idx+1)*slotLen).
type slot struct {
	idx int64
	n   uint64
}

// decide refreshes the state if it is stale, then decides the call.
func (s *clientState) decide(l *Limiter, client, endpoint string, reserve bool, now time.Time) Decision {
	s.refresh(l, client, now)
	s.mu.Lock()
	defer s.mu.Unlock()
	d := Decision{Allowed: true}
	if s.policy == nil {
		return d
	}
	d.Policy = s.policy.Client
	cutoff := s.readAt.Add(-l.cfg.Lag).UnixNano()
	n := uint64(l.cfg.Replicas)
	applied := make([]*limitState, 0, len(s.limits))
	used := make([]uint64, 0, len(s.limits))
	for _, ls := range s.limits {
		if !ls.applies(endpoint) {
			continue
		}
		if b := windows.StartUnix(now.UnixNano(), ls.step); b != ls.bucket {
			// A new window: nothing counted in it yet, and read it soon.
			ls.bucket, ls.table = b, 0
			clear(ls.admits)
			s.readAt = time.Time{}
		}
		u := ls.table + n*ls.admitted(cutoff)
		applied, used = append(applied, ls), append(used, u)
		if u >= ls.limit.Limit {
			d.Allowed = false
			d.RetryAfter = max(d.RetryAfter, ls.reset().Sub(now))
		}
	}
	if len(applied) == 0 {
		d.Policy = ""
		return d
	}
	d.Limits = make([]LimitState, len(applied))
	for i, ls := range applied {
		u := used[i]
		if d.Allowed && reserve {
			ls.admit(now)
			u += n
		}
		d.Limits[i] = LimitState{Limit: ls.limit, Remaining: ls.limit.Limit - min(u, ls.limit.Limit), Reset: ls.reset(),
			ResetSeconds: seconds(ls.reset().Sub(now))}
	}
	return d
}

// applies: a limit of all calls, or of this endpoint; limits of a service
// wait until the usage table counts per service.
func (ls *limitState) applies(endpoint string) bool {
	return ls.limit.Service == "" && (ls.limit.Endpoint == "" || ls.limit.Endpoint == endpoint)
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
		s.policy, s.limits = policy, nil
		if policy != nil {
			s.limits = make([]*limitState, len(policy.Limits))
			// Slots of a refresh (at most 32 over the lag) spanning the lag
			// and two refreshes: a read may be a refresh old, and take long.
			slotLen := max(l.cfg.Refresh, l.cfg.Lag/32, time.Millisecond)
			slots := int((l.cfg.Lag+2*l.cfg.Refresh)/slotLen) + 2
			for i, lim := range policy.Limits {
				s.limits[i] = &limitState{limit: lim, step: lim.Step(), slotLen: int64(slotLen), admits: make([]slot, slots)}
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
		switch {
		case b == nil:
		case lim.Endpoint == "":
			counts[i] = b.Total - l.exempted(b)
		default:
			counts[i] = b.Endpoints[lim.Endpoint]
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

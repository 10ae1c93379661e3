package enforce

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/quotas"
	"github.com/inarious/inarious/internal/windows"
)

// Source reads what a decision starts from: client's policy (its own, else
// the default; nil when none applies) and, per limit of it, the calls
// counted in the window holding now. The API reads its tables (New); the
// public middleware asks an Inarious server (GET /quotas/{client}/check).
type Source interface {
	Read(client string, now time.Time) (*quotas.Policy, []uint64, error)
}

// Policies reads the policy table (quotas.Table).
type Policies interface {
	Get(client string) (*quotas.Policy, error)
}

// Usage reads a client's windowed usage (views.UsageReader).
type Usage interface {
	Series(client string, step time.Duration, from, to time.Time) ([]windows.Bucket, error)
}

// tableSource reads the policy table and the windowed usage table.
type tableSource struct {
	policies Policies
	usage    Usage
	exempt   []string // route templates whose calls count against no limit
}

func (t *tableSource) Read(client string, now time.Time) (*quotas.Policy, []uint64, error) {
	policy, err := t.policies.Get(client)
	if err == nil && policy == nil {
		policy, err = t.policies.Get(quotas.Default)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read quota policy: %w", err)
	}
	if policy == nil {
		return nil, nil, nil
	}
	counts := make([]uint64, len(policy.Limits))
	byStep := map[time.Duration]*windows.Bucket{}
	for i, lim := range policy.Limits {
		step := lim.Step()
		b, seen := byStep[step]
		if !seen {
			start := time.Unix(windows.StartUnix(now.UnixNano(), step), 0)
			buckets, err := t.usage.Series(client, step, start, start)
			if err != nil {
				return nil, nil, fmt.Errorf("read usage: %w", err)
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
			counts[i] = only.Total - t.exempted(&only)
		default:
			counts[i] = b.Total - t.exempted(b)
		}
	}
	return policy, counts, nil
}

// exempted is the calls of b to exempt routes, which count against no limit.
func (t *tableSource) exempted(b *windows.Bucket) uint64 {
	var n uint64
	if len(t.exempt) == 0 {
		return 0
	}
	for ep, c := range b.Endpoints {
		if _, route, ok := strings.Cut(ep, " "); ok && slices.Contains(t.exempt, route) {
			n += c
		}
	}
	return min(n, b.Total)
}

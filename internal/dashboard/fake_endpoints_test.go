package dashboard

import (
	"cmp"
	"errors"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/processors/endpoints"
	"github.com/inarious/inarious/views"
)

// fakeEndpoints is an endpoints table in memory: summaries set by the test,
// listed in the reader's orders, and per-endpoint buckets. It counts the
// hub's reads. Exported methods serve the browser test (export_test.go).
type fakeEndpoints struct {
	mu      sync.Mutex
	rows    map[string]endpoints.Summary
	buckets map[string][]views.EndpointBucket
	win     windows.Config
	err     error

	lists  atomic.Int64 // Endpoints calls
	series atomic.Int64 // EndpointSeries calls
}

var _ views.EndpointReader = (*fakeEndpoints)(nil)

func newFakeEndpoints() *fakeEndpoints {
	return &fakeEndpoints{rows: map[string]endpoints.Summary{}, buckets: map[string][]views.EndpointBucket{}, win: windows.Default()}
}

// Set adds or replaces an endpoint's all-time summary.
func (f *fakeEndpoints) Set(endpoint string, calls uint64, p99, errorRate float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rows[endpoint] = endpoints.Summary{Endpoint: endpoint, Calls: calls, ErrorRate: errorRate,
		Latency: endpoints.Quantiles{P50: p99 / 4, P90: p99 / 2, P95: p99 * 3 / 4, P99: p99, Timed: calls}}
}

// SetBucket adds or replaces endpoint's bucket of a minute starting at start.
func (f *fakeEndpoints) SetBucket(endpoint string, start time.Time, calls uint64, p50, p95, p99 float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := views.EndpointBucket{Start: start, Step: time.Minute, Summary: endpoints.Summary{Endpoint: endpoint, Calls: calls,
		Latency: endpoints.Quantiles{P50: p50, P95: p95, P99: p99, Timed: calls}}}
	bs := slices.DeleteFunc(f.buckets[endpoint], func(o views.EndpointBucket) bool { return o.Start.Equal(start) })
	bs = append(bs, b)
	slices.SortFunc(bs, func(a, b views.EndpointBucket) int { return a.Start.Compare(b.Start) })
	f.buckets[endpoint] = bs
}

func (f *fakeEndpoints) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeEndpoints) Endpoint(endpoint string) (endpoints.Summary, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.rows[endpoint]
	return s, ok, f.err
}

func (f *fakeEndpoints) Endpoints(order views.EndpointOrder, after *views.EndpointCursor, limit int) (views.EndpointPage, error) {
	f.lists.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return views.EndpointPage{}, f.err
	}
	rows := slices.SortedFunc(maps.Values(f.rows), func(a, b endpoints.Summary) int {
		return cmp.Or(cmp.Compare(order.Value(b), order.Value(a)), cmp.Compare(a.Endpoint, b.Endpoint))
	})
	if after != nil {
		rows = slices.DeleteFunc(rows, func(s endpoints.Summary) bool {
			v := order.Value(s)
			return after.Before(v, s.Endpoint) || v == after.Value && s.Endpoint == after.Endpoint
		})
	}
	return views.EndpointPage{Rows: rows[:min(limit, len(rows))], Endpoints: len(f.rows)}, nil
}

func (f *fakeEndpoints) Windows() windows.Config { return f.win }

func (f *fakeEndpoints) EndpointSeries(endpoint string, step time.Duration, from, to time.Time) ([]views.EndpointBucket, error) {
	f.series.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var out []views.EndpointBucket
	for _, b := range f.buckets[endpoint] {
		if b.Step == step && !b.Start.Before(from) && !b.Start.After(to) {
			out = append(out, b)
		}
	}
	return out, nil
}

func (f *fakeEndpoints) EndpointRange(string, time.Duration) (views.EndpointWindow, error) {
	return views.EndpointWindow{}, errors.New("the dashboard reads no ranges")
}

func (f *fakeEndpoints) Recovered() bool { return true }

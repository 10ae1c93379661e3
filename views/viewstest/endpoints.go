package viewstest

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/processors/endpoints"
	"github.com/inarious/inarious/views"
)

// Endpoints is an endpoints table of in-memory rows, read as the local
// view reads its table: summaries, pages, series and merged ranges. It
// records the last series and range asked for.
type Endpoints struct {
	// Rows by key: an endpoint's all-time row by the endpoint, its bucket
	// rows by endpoints.BucketKey.
	Rows map[string]*endpoints.Row
	// Config is the windowing; NewEndpoints sets windows.Default().
	Config windows.Config
	// Now is the clock of series and ranges (time.Now when nil).
	Now func() time.Time
	// Err, when set, fails every read.
	Err error
	// NotRecovered makes Recovered false.
	NotRecovered bool

	mu       sync.Mutex
	step     time.Duration
	from, to time.Time
	window   time.Duration
}

var _ views.EndpointReader = (*Endpoints)(nil)

// NewEndpoints reads rows with the default windows.
func NewEndpoints(rows map[string]*endpoints.Row) *Endpoints {
	return &Endpoints{Rows: rows, Config: windows.Default()}
}

func (f *Endpoints) now() time.Time {
	if f.Now == nil {
		return time.Now()
	}
	return f.Now()
}

func (f *Endpoints) Endpoint(e string) (endpoints.Summary, bool, error) {
	if f.Err != nil {
		return endpoints.Summary{}, false, f.Err
	}
	r, ok := f.Rows[e]
	if !ok {
		return endpoints.Summary{}, false, nil
	}
	return endpoints.Summarize(e, r), true, nil
}

// Endpoints sorts every all-time row's summary on each call.
func (f *Endpoints) Endpoints(order views.EndpointOrder, after *views.EndpointCursor, limit int) (views.EndpointPage, error) {
	if f.Err != nil {
		return views.EndpointPage{}, f.Err
	}
	var all []endpoints.Summary
	for k, r := range f.Rows {
		if _, _, _, bucket, ok := endpoints.ParseKey(k); ok && !bucket {
			all = append(all, endpoints.Summarize(k, r))
		}
	}
	slices.SortFunc(all, func(a, b endpoints.Summary) int {
		if c := cmp.Compare(order.Value(b), order.Value(a)); c != 0 {
			return c
		}
		return cmp.Compare(a.Endpoint, b.Endpoint)
	})
	page := views.EndpointPage{Endpoints: len(all), Rows: []endpoints.Summary{}}
	for _, s := range all {
		if after != nil && (after.Before(order.Value(s), s.Endpoint) || *after == order.Cursor(s)) {
			continue
		}
		if len(page.Rows) == limit {
			break
		}
		page.Rows = append(page.Rows, s)
	}
	return page, nil
}

func (f *Endpoints) Windows() windows.Config { return f.Config }

func (f *Endpoints) EndpointSeries(e string, step time.Duration, from, to time.Time) ([]views.EndpointBucket, error) {
	f.mu.Lock()
	f.step, f.from, f.to = step, from, to
	f.mu.Unlock()
	now := f.now()
	if err := f.Config.CheckSeries(step, from, to, now); err != nil {
		return nil, err
	}
	rows, err := f.buckets(e, step, from, to)
	if err != nil {
		return nil, err
	}
	out := make([]views.EndpointBucket, len(rows))
	for i, r := range rows {
		out[i] = views.EndpointBucket{Start: r.Start, Step: step, Summary: endpoints.Summarize(e, r),
			Final: !now.Before(r.Start.Add(step + f.Config.Grace + 2*time.Second))}
	}
	return out, nil
}

// buckets are e's rows of step with calls starting in [from, to], oldest first.
func (f *Endpoints) buckets(e string, step time.Duration, from, to time.Time) ([]*endpoints.Row, error) {
	if f.Err != nil {
		return nil, f.Err
	}
	lo, hi := windows.StartBounds(step, from, to)
	var rows []*endpoints.Row
	for k, r := range f.Rows {
		ep, s, start, bucket, ok := endpoints.ParseKey(k)
		if ok && bucket && ep == e && s == step && start >= lo && start <= hi && r.Calls > 0 {
			c := *r
			c.Step, c.Start = step, time.Unix(start, 0).UTC()
			rows = append(rows, &c)
		}
	}
	slices.SortFunc(rows, func(a, b *endpoints.Row) int { return a.Start.Compare(b.Start) })
	return rows, nil
}

// EndpointRange merges the rows of the window's buckets, as the view does.
func (f *Endpoints) EndpointRange(e string, window time.Duration) (views.EndpointWindow, error) {
	f.mu.Lock()
	f.window = window
	f.mu.Unlock()
	now := f.now()
	step, from, to, err := f.Config.PlanRange(window, now)
	if err != nil {
		return views.EndpointWindow{}, err
	}
	rows, err := f.buckets(e, step, from, to)
	if err != nil {
		return views.EndpointWindow{}, err
	}
	lo, _ := windows.StartBounds(step, from, to)
	return views.EndpointWindow{Step: step, From: time.Unix(lo, 0).UTC(), To: to, Summary: endpoints.Summarize(e, endpoints.Sum(rows))}, nil
}

func (f *Endpoints) Recovered() bool { return !f.NotRecovered }

// LastSeries is the step, from and to of the last EndpointSeries.
func (f *Endpoints) LastSeries() (time.Duration, time.Time, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.step, f.from, f.to
}

// LastRange is the window of the last EndpointRange.
func (f *Endpoints) LastRange() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.window
}

// Package viewstest has views.UsageReader and views.EndpointReader fakes
// for tests of what reads the tables (routes, dashboard, auth); see the
// README ("Layout") for the rest.
package viewstest

import (
	"sync"
	"time"

	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/top"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/views"
)

// Rows is a usage table of fixed rows, ranked by a real top-clients index,
// with windowed usage off.
type Rows map[string]*activitypb.ClientUsage

var _ views.UsageReader = Rows{}

func (f Rows) Get(c string) (*activitypb.ClientUsage, error) { return f[c], nil }
func (f Rows) Recovered() bool                               { return true }

// Top answers from an index built from the rows as the table's storage
// layer builds it (top.Indexing).
func (f Rows) Top(r top.Ranking, after *top.Key, limit int) (top.Page, error) {
	idx := top.New()
	for k, u := range f {
		b, err := u.MarshalVT()
		if err != nil {
			return top.Page{}, err
		}
		row, err := top.UsageOf(b, nil)
		if err != nil {
			return top.Page{}, err
		}
		idx.Set(int32(len(k)%3), k, row)
	}
	return idx.Top(r, after, limit), nil
}

func (Rows) Windows() windows.Config { return windows.Config{} }

func (Rows) Series(string, time.Duration, time.Time, time.Time) ([]windows.Bucket, error) {
	return nil, errWindowsOff
}

func (Rows) Range(string, time.Duration) (windows.Sum, error) { return windows.Sum{}, errWindowsOff }

var errWindowsOff = &windows.QueryError{Msg: "windowed usage is off"}

// Windowed is a table with the default windows whose every series answers
// Buckets; it records the last query.
type Windowed struct {
	Rows
	Buckets []windows.Bucket

	mu       sync.Mutex
	step     time.Duration
	from, to time.Time
	window   time.Duration
}

// NewWindowed answers buckets for every client of rows.
func NewWindowed(rows Rows, buckets []windows.Bucket) *Windowed {
	return &Windowed{Rows: rows, Buckets: buckets}
}

func (f *Windowed) Windows() windows.Config { return windows.Default() }

func (f *Windowed) Series(_ string, step time.Duration, from, to time.Time) ([]windows.Bucket, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.step, f.from, f.to = step, from, to
	return f.Buckets, nil
}

// Range sums every bucket as the last window's minutes.
func (f *Windowed) Range(_ string, window time.Duration) (windows.Sum, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.window = window
	sum := windows.SumOf(f.Buckets)
	sum.Step, sum.From, sum.To = time.Minute, time.Now().Add(-window).Truncate(time.Minute), time.Now()
	return sum, nil
}

// LastSeries is the step, from and to of the last Series.
func (f *Windowed) LastSeries() (time.Duration, time.Time, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.step, f.from, f.to
}

// LastRange is the window of the last Range.
func (f *Windowed) LastRange() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.window
}

package views

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/tablestore"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/processors/endpoints"
)

// flushSlack is how long after a bucket's grace the aggregator may still be
// writing to it: it flushes about once a second.
const flushSlack = 2 * time.Second

// Endpoints reads the endpoints table from a local goka view of every
// partition, and keeps the summaries of the all-time rows for its lists.
type Endpoints struct {
	view *goka.View
	idx  *endpointIndex
	cfg  windows.Config
	now  func() time.Time
}

var _ EndpointReader = (*Endpoints)(nil)

// NewEndpoints builds a view of the endpoints table with local storage
// under dataDir (beside, not in, the usage view's), windowed as w. As in
// NewUsage, the index sets the storage builder and the update callback
// after WithViewOptions.
func NewEndpoints(cfg kafka.Config, w windows.Config, dataDir string, opts ...Option) (*Endpoints, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := w.Validate(); err != nil {
		return nil, err
	}
	s := settingsOf(opts)
	e := &Endpoints{idx: newEndpointIndex(), cfg: w, now: s.now}
	store := tablestore.Builder(filepath.Join(dataDir, "endpoints-view"), tablestore.DefaultOptions())
	all := append(cfg.ViewOptions(s.log), goka.WithViewHasher(endpoints.Hasher))
	all = append(all, s.goka...)
	all = append(all,
		goka.WithViewStorageBuilder(tablestore.Stack(store, e.idx.indexing(string(endpoints.Table)))),
		goka.WithViewCallback(goka.DefaultUpdate))
	v, err := goka.NewView(cfg.Brokers, endpoints.Table, endpoints.RowCodec{}, all...)
	if err != nil {
		return nil, fmt.Errorf("endpoints view: %w", err)
	}
	e.view = v
	return e, nil
}

// Stats are goka's per-partition view statistics, for metrics.
func (e *Endpoints) Stats(ctx context.Context) *goka.ViewStats { return e.view.Stats(ctx) }

// Goka is the underlying view, for goka's monitor page.
func (e *Endpoints) Goka() *goka.View { return e.view }

// Run keeps the view up to date until ctx ends.
func (e *Endpoints) Run(ctx context.Context) error { return e.view.Run(ctx) }

// Recovered reports whether the view follows the table (goka's locked
// state, as Usage.Recovered).
func (e *Endpoints) Recovered() bool { return e.view.CurrentState() == goka.ViewStateRunning }

// Windows is the windowing the endpoints group keeps.
func (e *Endpoints) Windows() windows.Config { return e.cfg }

// Endpoint is endpoint's all-time summary, from its row.
func (e *Endpoints) Endpoint(endpoint string) (endpoints.Summary, bool, error) {
	r, err := e.row(endpoint)
	if err != nil || r == nil {
		return endpoints.Summary{}, false, err
	}
	return endpoints.Summarize(endpoint, r), true, nil
}

func (e *Endpoints) row(key string) (*endpoints.Row, error) {
	v, err := e.view.Get(key)
	if err != nil || v == nil {
		return nil, err
	}
	r, _ := v.(*endpoints.Row)
	return r, nil
}

// Endpoints pages the index's summaries.
func (e *Endpoints) Endpoints(order EndpointOrder, after *EndpointCursor, limit int) (EndpointPage, error) {
	if !order.Valid() {
		return EndpointPage{}, &windows.QueryError{Msg: fmt.Sprintf("order %q is not one of calls, p99, error_rate", order)}
	}
	return e.idx.page(order, after, limit), nil
}

// EndpointSeries reads endpoint's bucket rows of step in [from, to] with
// one key range: they sort by start.
func (e *Endpoints) EndpointSeries(endpoint string, step time.Duration, from, to time.Time) ([]EndpointBucket, error) {
	now := e.now()
	if err := e.cfg.CheckSeries(step, from, to, now); err != nil {
		return nil, err
	}
	rows, err := e.buckets(endpoint, step, from, to)
	if err != nil {
		return nil, err
	}
	out := make([]EndpointBucket, 0, len(rows))
	for _, r := range rows {
		out = append(out, EndpointBucket{Start: r.Start, Step: step, Summary: endpoints.Summarize(endpoint, r),
			Final: !now.Before(r.Start.Add(step + e.cfg.Grace + flushSlack))})
	}
	return out, nil
}

// buckets are endpoint's bucket rows of step with calls whose start lies
// in [from, to], oldest first, Start and Step set from their keys.
func (e *Endpoints) buckets(endpoint string, step time.Duration, from, to time.Time) ([]*endpoints.Row, error) {
	lo, hi := windows.StartBounds(step, from, to)
	if lo > hi {
		return nil, nil
	}
	start, limit := endpoints.BucketRange(endpoint, step, lo, hi)
	it, err := e.view.IteratorWithRange(start, limit)
	if err != nil {
		return nil, err
	}
	defer it.Release()
	var rows []*endpoints.Row
	for it.Next() {
		ep, s, st, bucket, ok := endpoints.ParseKey(it.Key())
		if !ok || !bucket || ep != endpoint || s != step || st < lo || st > hi {
			continue
		}
		v, err := it.Value()
		if err != nil {
			return nil, fmt.Errorf("decode %q: %w", it.Key(), err)
		}
		r, _ := v.(*endpoints.Row)
		if r == nil || r.Calls == 0 {
			continue
		}
		r.Step, r.Start = step, time.Unix(st, 0).UTC()
		rows = append(rows, r)
	}
	return rows, it.Err()
}

// EndpointRange merges endpoint's buckets of the last window, as
// windows.Config.SumLast sums a client's: rows merge, sketches and all, so
// the quantiles are those of the window's calls.
func (e *Endpoints) EndpointRange(endpoint string, window time.Duration) (EndpointWindow, error) {
	now := e.now()
	step, from, to, err := e.cfg.PlanRange(window, now)
	if err != nil {
		return EndpointWindow{}, err
	}
	// Not CheckSeries: a whole retention of the finest step may span more
	// than MaxBuckets, and PlanRange checked the window.
	rows, err := e.buckets(endpoint, step, from, to)
	if err != nil {
		return EndpointWindow{}, err
	}
	lo, _ := windows.StartBounds(step, from, to)
	sum := endpoints.Sum(rows)
	return EndpointWindow{Step: step, From: time.Unix(lo, 0).UTC(), To: to, Summary: endpoints.Summarize(endpoint, sum)}, nil
}

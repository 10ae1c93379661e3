package views

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/internal/endpointindex"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/tablestore"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/processors/endpoints"
)

// Endpoints reads the endpoints table from a local goka view of every
// partition, and keeps the summaries of the all-time rows for its lists.
type Endpoints struct {
	EndpointAnswers
	view *goka.View
	idx  *endpointindex.Index
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
	e := &Endpoints{idx: endpointindex.New()}
	e.EndpointAnswers = EndpointAnswers{Rows: e, Config: w, Now: s.now}
	store := tablestore.Builder(filepath.Join(dataDir, "endpoints-view"), tablestore.DefaultOptions())
	all := append(cfg.ViewOptions(s.log), goka.WithViewHasher(endpoints.Hasher))
	all = append(all, s.goka...)
	all = append(all,
		goka.WithViewStorageBuilder(tablestore.Stack(store, e.idx.Layer(string(endpoints.Table)))),
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

// Row is the row of key (nil if none), from the view.
func (e *Endpoints) Row(key string) (*endpoints.Row, error) {
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
	return e.idx.Page(order, after, limit), nil
}

// Buckets reads endpoint's bucket rows of step in [fromUnix, toUnix] with
// one key range of the view: they sort by start.
func (e *Endpoints) Buckets(endpoint string, step time.Duration, fromUnix, toUnix int64) ([]*endpoints.Row, error) {
	start, limit := endpoints.BucketRange(endpoint, step, fromUnix, toUnix)
	it, err := e.view.IteratorWithRange(start, limit)
	if err != nil {
		return nil, err
	}
	defer it.Release()
	var rows []*endpoints.Row
	for it.Next() {
		st, ok := endpoints.BucketIn(it.Key(), endpoint, step, fromUnix, toUnix)
		if !ok {
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

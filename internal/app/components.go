package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/internal/dashboard"
	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/metrics"
	"github.com/inarious/inarious/internal/ownership"
	"github.com/inarious/inarious/internal/stream"
	"github.com/inarious/inarious/views"
)

// servedTable is a processor group's read side as the API process runs it:
// what runs until the process stops, what it serves, and how it is watched.
type servedTable struct {
	group goka.Group
	input goka.Stream
	table goka.Table
	// parts run until their context ends (views, owners trackers, the
	// dashboard hub); one ending before is a failure of the process.
	parts []part
	// routes are mounted on the API with its auth and activity middleware.
	routes []httpx.Route
	// recovered: the read side covers the whole table (/readyz).
	recovered func() bool
	checks    []api.ReadinessCheck
	counters  []metrics.Counter
	gauges    []metrics.Gauge
	// view is the table's local view, nil when it is read from the workers;
	// debug pages and lag metrics show it.
	view *goka.View
	// onShutdown runs when the HTTP server shuts down (ends event streams).
	onShutdown []func()
	// close releases what building opened, after everything stopped.
	close func()
	// lag adds consumers to watch besides the group on its input (the
	// endpoints aggregator on Users).
	lag []metrics.LagSource
	// What the table shows on the dashboard: the usage table is the hub's
	// source; others add panels.
	usage     views.UsageReader
	dashboard []dashboard.Option
	// gate, if not nil, wraps every route of the API (quotas).
	gate api.Gate
}

// part is something an API process runs until ctx ends.
type part struct {
	name string
	run  func(ctx context.Context) error
}

// component is a processor group with its read side: the group as a worker
// runs it, and (if it serves a table) its read side in the API process.
type component struct {
	group func(context.Context, Config, *slog.Logger) (*workerGroup, error)
	serve func(context.Context, Config, *slog.Logger) (*servedTable, error)
}

// components are the processor groups, in the order they start. Adding a
// group is one line here (see the README's walkthrough "Adding a processor
// group").
var components = []component{
	{group: usageGroup, serve: serveUsage},
	{group: endpointsGroup, serve: serveEndpoints},
	{group: dedupeStage},
}

// workerGroup is a processor group as a worker runs it.
type workerGroup struct {
	stream.Component
	// query, if not nil, adds the group's reads of the partitions this member
	// owns to the worker's --query-listen server.
	query         func(*http.ServeMux)
	queryCounters []metrics.Counter
	// onStart, if not nil, sees every processor of the group built.
	onStart func(*goka.Processor)
	// lease, if not nil, is renewed over every session of the group; the
	// group's query side answers only while it is fresh.
	lease *ownership.Lease
}

// buildGroups builds every component's group.
func buildGroups(ctx context.Context, cfg Config, log *slog.Logger) ([]*workerGroup, error) {
	groups := make([]*workerGroup, 0, len(components))
	for _, c := range components {
		g, err := c.group(ctx, cfg, log)
		if err != nil {
			return nil, err
		}
		if g != nil { // a group turned off by its flags
			groups = append(groups, g)
		}
	}
	return groups, nil
}

// buildTables builds every served table; on an error it closes those built.
func buildTables(ctx context.Context, cfg Config, log *slog.Logger) ([]*servedTable, error) {
	var tables []*servedTable
	for _, c := range components {
		if c.serve == nil {
			continue
		}
		t, err := c.serve(ctx, cfg, log)
		if err != nil {
			for _, t := range tables {
				t.close()
			}
			return nil, err
		}
		tables = append(tables, t)
	}
	if d := serveDashboard(tables, log); d != nil {
		tables = append(tables, d)
	}
	q, err := serveQuotas(ctx, cfg, tables, log)
	if err != nil {
		for _, t := range tables {
			t.close()
		}
		return nil, err
	}
	if q != nil {
		tables = append(tables, q)
	}
	return tables, nil
}

// serveDashboard is the live dashboard over the served tables: the usage
// table's reader feeds the hub, the other tables add their panels. It is
// nil without a usage table.
func serveDashboard(tables []*servedTable, log *slog.Logger) *servedTable {
	opts := []dashboard.Option{dashboard.WithLogger(log.With("component", "dashboard"))}
	var src views.UsageReader
	for _, t := range tables {
		if t.usage != nil {
			src = t.usage
		}
		opts = append(opts, t.dashboard...)
	}
	if src == nil {
		return nil
	}
	hub := dashboard.NewHub(opts...)
	return &servedTable{
		parts:      []part{{"dashboard", func(ctx context.Context) error { hub.Run(ctx, src); return nil }}},
		routes:     hub.Routes(),
		recovered:  func() bool { return true },
		onShutdown: []func(){hub.Close},
		gauges: []metrics.Gauge{{Name: "dashboard_subscribers", Help: "Open dashboard event streams.",
			Value: func() float64 { return float64(hub.Subscribers()) }}},
		close: func() {},
	}
}

// tablesOptions are the tables' routes and readiness as the API takes them.
func tablesOptions(tables []*servedTable) []api.Option {
	var opts []api.Option
	for _, t := range tables {
		opts = append(opts, api.WithRoutes(t.routes...), api.WithRecovered(t.recovered))
		if t.gate != nil {
			opts = append(opts, api.WithGate(t.gate))
		}
		for _, c := range t.checks {
			opts = append(opts, api.WithReadinessCheck(c))
		}
	}
	return opts
}

// started is the parts running: failed gets the error of the first that
// ended before it was stopped.
type started struct {
	parts  []part
	cancel []context.CancelFunc
	done   []chan struct{}
	failed chan error
}

// start runs every part, each with a context of its own (ctx's values, not
// its end: stop ends them).
func start(ctx context.Context, parts []part) *started {
	s := &started{parts: parts, failed: make(chan error, 1)}
	for _, p := range parts {
		pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		s.cancel, s.done = append(s.cancel, cancel), append(s.done, done)
		go func() {
			defer close(done)
			err := p.run(pctx)
			if pctx.Err() != nil {
				return
			}
			if err == nil {
				err = errors.New("it returned")
			}
			select {
			case s.failed <- fmt.Errorf("%s stopped: %w", p.name, err):
			default:
			}
		}()
	}
	return s
}

// stop ends the parts in the reverse order of their start (the dashboard
// before the views it reads), each once the one after it has ended, within
// timeout in all; it reports whether all ended.
func (s *started) stop(timeout time.Duration) bool {
	deadline := time.After(timeout)
	for i := len(s.parts) - 1; i >= 0; i-- {
		s.cancel[i]()
		select {
		case <-s.done[i]:
		case <-deadline:
			return false
		}
	}
	return true
}

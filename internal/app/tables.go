package app

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/dashboard"
	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/metrics"
	"github.com/inarious/inarious/internal/usagehttp"
	"github.com/inarious/inarious/processors/usage"
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
}

// part is something an API process runs until ctx ends.
type part struct {
	name string
	run  func(ctx context.Context) error
}

// servedTables are the tables the API serves, one line each (see the
// README's walkthrough "Adding a processor group").
var servedTables = []func(context.Context, Config, *slog.Logger) (*servedTable, error){
	serveUsage,
}

// serveUsage is the usage group's read side: local views of the table and
// its windowed topics, or (--usage-source=workers) the workers owning each
// client; GET /usage… and the dashboard read either through one
// views.UsageReader.
func serveUsage(_ context.Context, cfg Config, log *slog.Logger) (*servedTable, error) {
	wcfg, err := cfg.WindowConfig()
	if err != nil {
		return nil, err
	}
	t := &servedTable{group: usage.Group, input: codecs.ActivityTopic, table: usage.Table, close: func() {}}
	var reader views.UsageReader
	if cfg.UsageSource == UsageFromWorkers {
		routed, err := newRoutedUsage(cfg, wcfg, log)
		if err != nil {
			return nil, err
		}
		reader = routed.reader
		t.parts = append(t.parts, part{"usage owners", func(ctx context.Context) error { routed.tracker.Run(ctx); return nil }})
		t.checks = append(t.checks, routed.readiness())
		t.counters = append(t.counters, routed.reader.Counters()...)
		t.close = routed.reader.Close
		log.Info("usage read from the owning workers", "usage_source", UsageFromWorkers)
	} else {
		dir := filepath.Join(cfg.DataDir, "api")
		view, err := views.NewUsage(cfg.Kafka, dir, log)
		if err != nil {
			return nil, err
		}
		// The windowed views merge closed buckets with the open ones in the
		// client's row.
		win, err := views.NewWindows(cfg.Kafka, wcfg, dir, view, log)
		if err != nil {
			return nil, err
		}
		reader = views.Local{Table: view, Windowed: win}
		t.view = view.Goka()
		t.parts = append(t.parts, part{"usage view", view.Run}, part{"windowed usage views", win.Run})
	}
	t.recovered = reader.Recovered
	hub := dashboard.NewHub(log.With("component", "dashboard"))
	t.parts = append(t.parts, part{"dashboard", func(ctx context.Context) error { hub.Run(ctx, reader); return nil }})
	t.onShutdown = append(t.onShutdown, hub.Close)
	t.gauges = append(t.gauges, metrics.Gauge{Name: "dashboard_subscribers", Help: "Open dashboard event streams.",
		Value: func() float64 { return float64(hub.Subscribers()) }})
	t.routes = append(usagehttp.Routes(reader, usagehttp.WithLogger(log)), hub.Routes()...)
	return t, nil
}

// buildTables builds every served table; on an error it closes those built.
func buildTables(ctx context.Context, cfg Config, log *slog.Logger) ([]*servedTable, error) {
	var tables []*servedTable
	for _, build := range servedTables {
		t, err := build(ctx, cfg, log)
		if err != nil {
			for _, t := range tables {
				t.close()
			}
			return nil, err
		}
		tables = append(tables, t)
	}
	return tables, nil
}

// tablesOptions are the tables' routes and readiness as the API takes them.
func tablesOptions(tables []*servedTable) []api.Option {
	var opts []api.Option
	for _, t := range tables {
		opts = append(opts, api.WithRoutes(t.routes...), api.WithRecovered(t.recovered))
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
			if pctx.Err() == nil {
				select {
				case s.failed <- fmt.Errorf("%s stopped: %w", p.name, err):
				default:
				}
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

package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/gorilla/mux"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/web/index"
	"github.com/lovoo/goka/web/monitor"
	"github.com/lovoo/goka/web/query"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/internal/auth"
	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/metrics"
	"github.com/inarious/inarious/internal/problem"
)

// observed is what a worker shares with the API in the same process, so the
// API's /metrics and debug pages cover both.
type observed struct {
	metrics *metrics.Metrics

	mu    sync.Mutex
	procs []*goka.Processor
	mon   *monitor.Server
}

func newObserved() *observed { return &observed{metrics: metrics.New()} }

// addProcessor shows a processor on the debug pages; a rebuilt one replaces
// none of the earlier, whose pages then show them stopped.
func (o *observed) addProcessor(proc *goka.Processor) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.procs = append(o.procs, proc)
	if o.mon != nil {
		o.mon.AttachProcessor(proc)
	}
}

// apiOptions instruments the API and mounts /metrics and, with
// --debug-pages, goka's pages and Go's profiler; every served table adds its
// counters, gauges, consumer lag and views. The returned func releases what
// it opened.
func (o *observed) apiOptions(cfg Config, log *slog.Logger, pub, ingest *api.Publisher, tables []*servedTable) ([]api.Option, func()) {
	m := o.metrics
	m.WatchCounters(pub.Counters()...)
	m.WatchGauges(pub.Gauges()...)
	if ingest != pub {
		for _, c := range ingest.Counters() {
			m.WatchCounters(metrics.Counter{Name: "ingest_" + c.Name, Help: "Ingest endpoints: " + c.Help, Value: c.Value})
		}
		for _, g := range ingest.Gauges() {
			m.WatchGauges(metrics.Gauge{Name: "ingest_" + g.Name, Help: "Ingest endpoints: " + g.Help, Value: g.Value})
		}
	}
	var lagSources []metrics.LagSource
	var viewed []func() bool
	for _, t := range tables {
		m.WatchCounters(t.counters...)
		m.WatchGauges(t.gauges...)
		lagSources = append(lagSources, t.lag...)
		if t.group == "" {
			continue // the dashboard reads the others
		}
		src := metrics.LagSource{Group: string(t.group), Input: string(t.input), Table: string(t.table)}
		if t.view != nil {
			viewed = append(viewed, t.recovered)
			src.View = t.view
		}
		lagSources = append(lagSources, src)
	}
	if len(viewed) > 0 {
		m.WatchRecovered(func() bool {
			for _, recovered := range viewed {
				if !recovered() {
					return false
				}
			}
			return true
		})
	}
	release := func() {}
	// Lag is measured with a client of its own, so a slow broker only slows scrapes.
	if kc, err := sarama.NewClient(cfg.Kafka.Brokers, cfg.Kafka.Sarama()); err != nil {
		log.Warn("consumer lag metrics disabled", "err", err)
	} else if lag, err := metrics.NewLag(kc, lagSources, metrics.WithLogger(log)); err != nil {
		_ = kc.Close()
		log.Warn("consumer lag metrics disabled", "err", err)
	} else {
		m.Registry().MustRegister(lag)
		release = func() { _ = kc.Close() }
	}
	routes := []httpx.Route{{Method: http.MethodGet, Path: "/metrics", Scope: auth.Public, Handler: m.Handler()}}
	if cfg.DebugPages {
		routes = append(routes, o.debugPages(tables, log))
	}
	return []api.Option{api.WithMiddleware(m.Middleware), api.WithRoutes(routes...)}, release
}

// debugPages serves goka's monitor and query pages under /debug/goka/ and
// Go's profiler under /debug/pprof/. goka registers its pages on a
// *mux.Router, so they get a router of their own behind one admin route.
// Tables read from the workers have no view to show.
func (o *observed) debugPages(tables []*servedTable, log *slog.Logger) httpx.Route {
	const base = "/debug/goka"
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, http.StatusNotFound, "no such debug page")
	})
	gl := kafka.GokaLogger(log)
	mon := monitor.NewServer(base+"/monitor", r, monitor.WithLogger(gl))
	qry := query.NewServer(base+"/query", r, query.WithLogger(gl))
	idx := index.NewServer(base, r)
	idx.AddComponent(mon, "Monitor")
	idx.AddComponent(qry, "Query")
	for _, t := range tables {
		if t.table == "" {
			continue
		}
		if t.view == nil {
			log.Warn("--debug-pages: goka's pages need a view; not shown for a table read from the workers", "table", t.table)
			continue
		}
		mon.AttachView(t.view)
		if err := qry.AttachSource(string(t.table), t.view.Get); err != nil {
			log.Warn("debug pages: query source", "table", t.table, "err", err)
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.mon = mon
	for _, p := range o.procs {
		mon.AttachProcessor(p)
	}
	// Go's profiler, for the same operators: heap and CPU profiles of a live process.
	r.HandleFunc("/debug/pprof/", pprof.Index)
	r.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	r.HandleFunc("/debug/pprof/profile", pprof.Profile)
	r.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	r.HandleFunc("/debug/pprof/trace", pprof.Trace)
	r.PathPrefix("/debug/pprof/").HandlerFunc(pprof.Index)
	log.Info("goka debug pages enabled", "path", base+"/")
	return httpx.Route{Path: "/debug/", Prefix: true, Scope: auth.Admin, Handler: r}
}

// serveWorkerMetrics serves /metrics and /healthz for a worker process,
// which has no API to mount them on. stop shuts the server down.
func (o *observed) serveWorkerMetrics(addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", o.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("worker metrics server", "err", err)
		}
	}()
	log.Info("worker metrics listening", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

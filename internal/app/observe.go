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
	"github.com/inarious/inarious/internal/dashboard"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/metrics"
	"github.com/inarious/inarious/processors"
	"github.com/inarious/inarious/views"
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

func (o *observed) addWorker(proc *goka.Processor, usage *processors.Usage) {
	o.metrics.WatchUsage(usage)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.procs = append(o.procs, proc)
	if o.mon != nil {
		o.mon.AttachProcessor(proc)
	}
}

// apiOptions instruments the API and mounts /metrics, the dashboard and,
// with --debug-pages, goka's pages. The returned func releases what it opened.
func (o *observed) apiOptions(cfg Config, log *slog.Logger, view *views.Usage, pub *api.Publisher, hub *dashboard.Hub) ([]api.Option, func()) {
	m := o.metrics
	m.WatchPublisher(pub)
	m.WatchRecovered(view.Recovered)
	m.WatchGauge("dashboard_subscribers", "Open dashboard event streams.", func() float64 { return float64(hub.Subscribers()) })
	release := func() {}
	// Lag is measured with a client of its own, so a slow broker only slows scrapes.
	if kc, err := sarama.NewClient(cfg.Kafka.Brokers, cfg.Kafka.Sarama()); err != nil {
		log.Warn("consumer lag metrics disabled", "err", err)
	} else if lag, err := metrics.NewLag(kc, string(kafka.UsageGroup), string(kafka.ActivityTopic),
		view, string(goka.GroupTable(kafka.UsageGroup)), log); err != nil {
		_ = kc.Close()
		log.Warn("consumer lag metrics disabled", "err", err)
	} else {
		m.Registry().MustRegister(lag)
		release = func() { _ = kc.Close() }
	}
	return []api.Option{
		api.WithMiddleware(m.Middleware),
		api.WithRoutes(func(r *mux.Router) {
			r.Handle("/metrics", m.Handler()).Methods(http.MethodGet, http.MethodHead)
			hub.Routes(r)
			if cfg.DebugPages {
				o.mountDebugPages(r, view, log)
			}
		}),
	}, release
}

// mountDebugPages serves goka's monitor and query pages under /debug/goka/
// and Go's pprof under /debug/pprof/.
func (o *observed) mountDebugPages(r *mux.Router, view *views.Usage, log *slog.Logger) {
	const base = "/debug/goka"
	gl := kafka.GokaLogger(log)
	mon := monitor.NewServer(base+"/monitor", r, monitor.WithLogger(gl))
	qry := query.NewServer(base+"/query", r, query.WithLogger(gl))
	idx := index.NewServer(base, r)
	idx.AddComponent(mon, "Monitor")
	idx.AddComponent(qry, "Query")
	mon.AttachView(view.Goka())
	table := string(goka.GroupTable(kafka.UsageGroup))
	if err := qry.AttachSource(table, func(k string) (any, error) { return view.Get(k) }); err != nil {
		log.Warn("debug pages: query source", "err", err)
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

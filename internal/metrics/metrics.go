// Package metrics exposes Inarious' Prometheus metrics on its own registry:
// HTTP requests, activity events, usage processing, consumer lag and view
// recovery.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/processors"
)

// Namespace prefixes every Inarious metric.
const Namespace = "inarious"

// Metrics owns a registry and the HTTP instruments.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// New returns metrics on a fresh registry (never the global one, so several
// servers, e.g. in tests, do not collide), with Go and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests served, by route template, method and status.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Subsystem: "http", Name: "request_duration_seconds",
			Help:    "HTTP request latency, by route template, method and status. Streams count once, when they end.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "status"}),
	}
	m.reg.MustRegister(m.requests, m.duration,
		// go_gc_heap_live_bytes: the heap that survived the last GC, the
		// figure that shows a leak (heap in use also counts garbage).
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsGC)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where further collectors go.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Middleware observes every request. It must run inside the mux router
// (api.WithMiddleware) so the matched route template is known.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := api.NewStatusRecorder(w)
		next.ServeHTTP(rec, r)
		route := api.RouteTemplate(r)
		if route == "" {
			route = processors.UnmatchedRoute
		}
		labels := prometheus.Labels{"route": route, "method": method(r.Method), "status": strconv.Itoa(rec.Status())}
		m.requests.With(labels).Inc()
		m.duration.With(labels).Observe(time.Since(start).Seconds())
	})
}

// method bounds the label's values: any token is a valid HTTP method.
func method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "OTHER"
}

func counterFunc(name, help string, fn func() uint64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help},
		func() float64 { return float64(fn()) })
}

func gaugeFunc(name, help string, fn func() float64) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help}, fn)
}

// WatchPublisher exports the API's activity event counters.
func (m *Metrics) WatchPublisher(p *api.Publisher) {
	m.reg.MustRegister(
		counterFunc("events_accepted_total", "Activity events queued for Kafka.", func() uint64 { return p.Stats().Accepted }),
		counterFunc("events_emitted_total", "Activity events acknowledged by Kafka.", func() uint64 { return p.Stats().Delivered }),
		counterFunc("events_failed_total", "Accepted activity events never delivered to Kafka because shutdown came first: still queued, or failed by the producer after shutdown began (failed deliveries before it are retried, not counted).", func() uint64 { return p.Stats().Failed }),
		counterFunc("events_dropped_total", "Activity events dropped because the queue was full or closed.", func() uint64 { return p.Stats().Dropped }),
		gaugeFunc("events_queued", "Activity events waiting for the producer.", func() float64 { return float64(p.Stats().Queued) }),
	)
}

// WatchUsage exports the usage processor's counters (processes running a worker).
func (m *Metrics) WatchUsage(u *processors.Usage) {
	m.reg.MustRegister(
		counterFunc("usage_events_processed_total", "Activity events counted into the usage table.", func() uint64 { return u.Stats().Processed }),
		counterFunc("usage_replays_skipped_total", "Activity events skipped because their offset was already applied.", func() uint64 { return u.Stats().Replays }),
		counterFunc("usage_dead_lettered_total", "Activity records sent to the dead-letter topic.", func() uint64 { return u.Stats().DeadLettered }),
	)
}

// WatchRecovered exports whether the usage view has caught up (1) or not (0).
func (m *Metrics) WatchRecovered(recovered func() bool) {
	m.reg.MustRegister(gaugeFunc("view_recovered", "1 once the usage view has caught up with the table, else 0.", func() float64 {
		if recovered() {
			return 1
		}
		return 0
	}))
}

// WatchGauge exports any other gauge, e.g. dashboard subscribers.
func (m *Metrics) WatchGauge(name, help string, fn func() float64) {
	m.reg.MustRegister(gaugeFunc(name, help, fn))
}

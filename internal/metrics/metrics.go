// Package metrics exposes Inarious' Prometheus metrics on its own registry:
// HTTP requests, activity events, usage processing, consumer lag and view
// recovery.
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/inarious/inarious/internal/httpx"
)

// Namespace prefixes every Inarious metric.
const Namespace = "inarious"

// Metrics owns a registry and the HTTP instruments.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	byLabels sync.Map // observerKey → *requestObservers
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
// (so it sees the route mux matched) so the matched route template is known.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httpx.Recorder(w)
		start := rec.Start
		if start.IsZero() {
			start = time.Now()
		}
		next.ServeHTTP(rec, r)
		route := rec.Route
		if route == "" {
			route = httpx.RouteTemplate(r)
		}
		if route == "" {
			route = httpx.UnmatchedRoute
		}
		o := m.observers(route, method(r.Method), rec.Status())
		o.requests.Inc()
		o.duration.Observe(time.Since(start).Seconds())
	})
}

// observerKey is one label combination; routes and methods are bounded, and
// so are the statuses the API writes.
type observerKey struct {
	route, method string
	status        int
}

// requestObservers are the instruments of one label combination.
type requestObservers struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// observers finds the instruments of a label combination once; later
// requests skip building the labels map and hashing it (two vector lookups).
func (m *Metrics) observers(route, method string, status int) *requestObservers {
	k := observerKey{route, method, status}
	if o, ok := m.byLabels.Load(k); ok {
		return o.(*requestObservers)
	}
	labels := prometheus.Labels{"route": route, "method": method, "status": strconv.Itoa(status)}
	o, _ := m.byLabels.LoadOrStore(k, &requestObservers{requests: m.requests.With(labels), duration: m.duration.With(labels)})
	return o.(*requestObservers)
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

// Counter is a monotonically increasing value a component exports.
type Counter struct {
	Name, Help string
	Value      func() uint64
}

// Gauge is a value a component exports that goes up and down.
type Gauge struct {
	Name, Help string
	Value      func() float64
}

// WatchCounters exports counters, e.g. a processor group's or the publisher's.
func (m *Metrics) WatchCounters(cs ...Counter) {
	for _, c := range cs {
		m.reg.MustRegister(counterFunc(c.Name, c.Help, c.Value))
	}
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

// WatchGauges exports gauges, e.g. dashboard subscribers.
func (m *Metrics) WatchGauges(gs ...Gauge) {
	for _, g := range gs {
		m.reg.MustRegister(gaugeFunc(g.Name, g.Help, g.Value))
	}
}

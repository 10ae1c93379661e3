package dashboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/inarious/inarious/internal/problem"
	"github.com/inarious/inarious/views"
)

// TopEndpoints is how many endpoints each endpoint list shows.
const TopEndpoints = 10

const (
	// endpointsEvery bounds how often the endpoint lists and a latency
	// chart are read: each read merges sketches, and ticks come every
	// 250 ms. The page's browsers share these reads.
	endpointsEvery = time.Second
	// chartSpan is how far back a latency chart goes, in buckets of the
	// finest kept step; chartBuckets caps the points for fine steps.
	chartSpan    = 30 * time.Minute
	chartBuckets = 120
	// maxEndpointLen matches the longest endpoint the series route accepts.
	maxEndpointLen = 512
)

// errChartsOff: without windows there are no buckets to chart.
var errChartsOff = errors.New("windowed endpoint statistics are off")

// WithEndpoints adds the endpoint panels (slowest and most failing endpoints,
// a latency chart per endpoint) read from r; without it they stay hidden.
func WithEndpoints(r views.EndpointReader) Option {
	return func(h *Hub) { h.eps = r }
}

// EndpointsPanel is the endpoint part of a snapshot.
type EndpointsPanel struct {
	ByP99       []EndpointRow `json:"by_p99"`
	ByErrorRate []EndpointRow `json:"by_error_rate"`
	// Endpoints is how many endpoints the table holds.
	Endpoints int `json:"endpoints"`
	// Busiest is the endpoint with the most calls: the chart a page shows
	// until its user picks another.
	Busiest string `json:"busiest,omitempty"`
	// Windowed is false when windows are off: no latency charts then.
	Windowed bool `json:"windowed"`
	// Chart is Busiest's latency chart, so most pages need no request.
	Chart *LatencyChart `json:"chart,omitempty"`
	// Services are the services whose calls the table holds, busiest first.
	Services []ServiceRow `json:"services"`
}

// ServiceRow is one service of the panel.
type ServiceRow struct {
	Service   string  `json:"service"`
	Endpoints int     `json:"endpoints"`
	Calls     uint64  `json:"calls"`
	ErrorRate float64 `json:"error_rate"`
}

// EndpointRow is one endpoint of a list.
type EndpointRow struct {
	Endpoint  string  `json:"endpoint"`
	Calls     uint64  `json:"calls"`
	P99       float64 `json:"p99_ms"`
	ErrorRate float64 `json:"error_rate"`
}

// LatencyChart is an endpoint's latency quantiles in the Buckets buckets of
// StepMs starting at From, the newest holding now.
type LatencyChart struct {
	Endpoint string    `json:"endpoint"`
	StepMs   int64     `json:"step_ms"`
	From     time.Time `json:"from"`
	Buckets  int       `json:"buckets"`
	// Points are the buckets with calls, oldest first.
	Points []LatencyPoint `json:"points"`
}

// LatencyPoint is one bucket's latency quantiles, in milliseconds.
type LatencyPoint struct {
	Start time.Time `json:"start"`
	Calls uint64    `json:"calls"`
	P50   float64   `json:"p50"`
	P95   float64   `json:"p95"`
	P99   float64   `json:"p99"`
}

type cachedChart struct {
	at    time.Time
	chart *LatencyChart
}

// refreshEndpoints rereads the panel when it is due and reports whether it
// changed. A failed read keeps the previous panel until the next try.
func (h *Hub) refreshEndpoints(now time.Time) bool {
	if h.epsPanel != nil && now.Sub(h.epsAt) < endpointsEvery {
		return false
	}
	h.epsAt = now
	panel, err := h.readPanel(now)
	if err != nil {
		if !h.epsFailing {
			h.log.Warn("dashboard: endpoint statistics not available", "err", err)
		}
		h.epsFailing = true
		return false
	}
	h.epsFailing = false
	msg, err := json.Marshal(panel)
	if err != nil {
		h.log.Error("dashboard: encode endpoints", "err", err)
		return false
	}
	if bytes.Equal(msg, h.epsPanel) {
		return false
	}
	h.epsPanel = msg
	return true
}

func (h *Hub) readPanel(now time.Time) (*EndpointsPanel, error) {
	p := &EndpointsPanel{Windowed: len(h.eps.Windows().Specs) > 0}
	for _, l := range []struct {
		order views.EndpointOrder
		rows  *[]EndpointRow
	}{{views.ByP99, &p.ByP99}, {views.ByErrorRate, &p.ByErrorRate}} {
		page, err := h.eps.Endpoints(l.order, nil, TopEndpoints)
		if err != nil {
			return nil, err
		}
		*l.rows = make([]EndpointRow, 0, len(page.Rows))
		for _, s := range page.Rows {
			*l.rows = append(*l.rows, EndpointRow{Endpoint: s.Endpoint, Calls: s.Calls, P99: s.Latency.P99, ErrorRate: s.ErrorRate})
		}
		p.Endpoints = page.Endpoints
	}
	services, busiest, err := views.ServicesAndBusiest(h.eps)
	if err != nil {
		return nil, err
	}
	p.Services = make([]ServiceRow, len(services))
	for i, svc := range services {
		p.Services[i] = ServiceRow{Service: svc.Service, Endpoints: svc.Endpoints, Calls: svc.Calls, ErrorRate: svc.ErrorRate}
	}
	if busiest == nil || !p.Windowed {
		return p, nil
	}
	p.Busiest = busiest.Endpoint
	if p.Chart, err = h.readChart(p.Busiest, now); err != nil {
		return nil, err
	}
	return p, nil
}

// chart is endpoint's latency chart, read at most once per endpointsEvery
// however many pages ask: the route's reads are serialized under chartsMu.
func (h *Hub) chart(endpoint string, now time.Time) (*LatencyChart, error) {
	h.chartsMu.Lock()
	defer h.chartsMu.Unlock()
	if c, ok := h.charts[endpoint]; ok && now.Sub(c.at) < endpointsEvery {
		return c.chart, nil
	}
	return h.readChartLocked(endpoint, now)
}

// readChart reads endpoint's chart and caches it for the route.
func (h *Hub) readChart(endpoint string, now time.Time) (*LatencyChart, error) {
	h.chartsMu.Lock()
	defer h.chartsMu.Unlock()
	return h.readChartLocked(endpoint, now)
}

func (h *Hub) readChartLocked(endpoint string, now time.Time) (*LatencyChart, error) {
	specs := h.eps.Windows().Specs
	if len(specs) == 0 {
		return nil, errChartsOff
	}
	spec := specs[0]
	n := min(max(int(chartSpan/spec.Step), 1), chartBuckets, int(spec.Retention/spec.Step))
	from := now.Truncate(spec.Step).Add(-time.Duration(n-1) * spec.Step).UTC()
	buckets, err := h.eps.EndpointSeries(endpoint, spec.Step, from, now)
	if err != nil {
		return nil, err
	}
	c := &LatencyChart{Endpoint: endpoint, StepMs: spec.Step.Milliseconds(), From: from, Buckets: n,
		Points: make([]LatencyPoint, 0, len(buckets))}
	for _, b := range buckets {
		c.Points = append(c.Points, LatencyPoint{Start: b.Start.UTC(), Calls: b.Calls,
			P50: b.Latency.P50, P95: b.Latency.P95, P99: b.Latency.P99})
	}
	// Drop what expired, so the cache holds only what pages asked for lately.
	for k, v := range h.charts {
		if now.Sub(v.at) >= endpointsEvery {
			delete(h.charts, k)
		}
	}
	h.charts[endpoint] = cachedChart{at: now, chart: c}
	return c, nil
}

// serveChart answers GET /dashboard/endpoints/series?endpoint=E: the
// latency chart of an endpoint a page picked.
func (h *Hub) serveChart(w http.ResponseWriter, r *http.Request) {
	endpoint := r.URL.Query().Get("endpoint")
	if endpoint == "" || len(endpoint) > maxEndpointLen || !utf8.ValidString(endpoint) {
		problem.Write(w, r, http.StatusBadRequest, "endpoint must be valid UTF-8 of 1 to 512 bytes")
		return
	}
	c, err := h.chart(endpoint, time.Now())
	switch {
	case errors.Is(err, errChartsOff):
		problem.Write(w, r, http.StatusNotFound, err.Error())
		return
	case err != nil:
		h.log.Warn("dashboard: endpoint series not available", "endpoint", endpoint, "err", err)
		problem.WriteError(w, r, err, "endpoint statistics are not available")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_ = json.NewEncoder(w).Encode(c)
}

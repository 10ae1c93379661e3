package usagehttp

import (
	"errors"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/problem"
	"github.com/inarious/inarious/internal/windows"
)

// Bucket is one bucket of GET /usage/{client}/series.
type Bucket struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Total uint64    `json:"total"`
	// Status is the bucket's calls by status class, over every endpoint.
	Status    codecs.StatusCounts `json:"status,omitzero"`
	Endpoints map[string]uint64   `json:"endpoints"`
	// EndpointStatus is the calls per endpoint by status class; endpoints
	// without a call of known status are left out.
	EndpointStatus map[string]codecs.StatusCounts `json:"endpoint_status,omitempty"`
	// Final is false while the bucket is open: its counts may still grow.
	Final bool `json:"final"`
}

// Series is GET /usage/{client}/series.
type Series struct {
	Client  string    `json:"client"`
	Step    string    `json:"step"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Buckets []Bucket  `json:"buckets"`
}

// WindowUsage is GET /usage/{client}?window=: ClientUsage over the buckets
// of the last window, with the span they cover.
type WindowUsage struct {
	ClientUsage
	Window string    `json:"window"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
}

func (h *handler) getSeries(w http.ResponseWriter, r *http.Request) {
	client := mux.Vars(r)["client"]
	if len(client) > maxClientLen || !utf8.ValidString(client) {
		problem.Write(w, r, http.StatusBadRequest, "client must be valid UTF-8 of at most 256 bytes")
		return
	}
	service, narrowed, ok := httpx.ServiceParam(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	step, from, to, err := h.usage.Windows().ParseSeries(q.Get("step"), q.Get("from"), q.Get("to"), time.Now())
	if err != nil {
		problem.Write(w, r, http.StatusBadRequest, err.Error())
		return
	}
	buckets, err := h.usage.Series(client, step, from, to)
	if err != nil {
		h.windowError(w, r, client, err)
		return
	}
	out := Series{Client: client, Step: windows.FormatDuration(step), From: from.UTC(), To: to.UTC(), Buckets: make([]Bucket, len(buckets))}
	for i, b := range buckets {
		if narrowed {
			b = b.OfService(service)
		}
		out.Buckets[i] = Bucket{Start: b.Start, End: b.End(), Total: b.Total, Status: codecs.SumStatus(b.Status), Endpoints: b.Endpoints,
			EndpointStatus: nonZero(b.Status), Final: b.Final}
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// getUsageWindow is GET /usage/{client}?window=5m, for a known client.
func (h *handler) getUsageWindow(w http.ResponseWriter, r *http.Request, client, service string, narrowed bool) {
	d, err := h.usage.Windows().ParseWindow(r.URL.Query().Get("window"), time.Now())
	if err != nil {
		problem.Write(w, r, http.StatusBadRequest, err.Error())
		return
	}
	sum, err := h.usage.Range(client, d)
	if err != nil {
		h.windowError(w, r, client, err)
		return
	}
	if narrowed {
		sum = sum.OfService(service)
	}
	out := WindowUsage{
		ClientUsage: ClientUsage{Client: client, Total: sum.Total, Status: codecs.SumStatus(sum.Status),
			Endpoints: make(map[string]EndpointCount, len(sum.Endpoints))},
		Window: windows.FormatDuration(d), From: sum.From, To: sum.To.UTC(),
	}
	for k, n := range sum.Endpoints {
		svc, _ := codecs.SplitEndpointKey(k)
		out.Endpoints[k] = EndpointCount{Service: svc, Count: n, Status: sum.Status[k]}
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// nonZero is byEndpoint without the endpoints that have no classed call
// (nil when none has one).
func nonZero(byEndpoint map[string]codecs.StatusCounts) map[string]codecs.StatusCounts {
	var out map[string]codecs.StatusCounts
	for k, c := range byEndpoint {
		if c.IsZero() {
			continue
		}
		if out == nil {
			out = make(map[string]codecs.StatusCounts, len(byEndpoint))
		}
		out[k] = c
	}
	return out
}

func (h *handler) windowError(w http.ResponseWriter, r *http.Request, client string, err error) {
	var qe *windows.QueryError
	if errors.As(err, &qe) {
		problem.Write(w, r, http.StatusBadRequest, qe.Error())
		return
	}
	h.log.Error("windowed usage lookup failed", "client", strconv.Quote(client), "err", err)
	// A routed read that found no owner says so: 503 with Retry-After.
	problem.WriteError(w, r, err, "windowed usage is not available")
}

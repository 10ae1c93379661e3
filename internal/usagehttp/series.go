package usagehttp

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
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

// parseTime reads "now", a duration before now ("-1h", "-2d") or RFC 3339.
func parseTime(v string, def, now time.Time) (time.Time, bool) {
	switch {
	case v == "":
		return def, true
	case v == "now":
		return now, true
	case strings.HasPrefix(v, "-"):
		d, err := windows.ParseDuration(v[1:])
		if err != nil || d < 0 {
			return time.Time{}, false
		}
		return now.Add(-d), true
	}
	t, err := time.Parse(time.RFC3339, v)
	return t, err == nil
}

func (h *handler) getSeries(w http.ResponseWriter, r *http.Request) {
	client := mux.Vars(r)["client"]
	if len(client) > maxClientLen || !utf8.ValidString(client) {
		problem.Write(w, r, http.StatusBadRequest, "client must be valid UTF-8 of at most 256 bytes")
		return
	}
	cfg := h.usage.Windows()
	q := r.URL.Query()
	var step time.Duration
	if len(cfg.Specs) > 0 {
		step = cfg.Specs[0].Step
	}
	if v := q.Get("step"); v != "" {
		d, err := windows.ParseDuration(v)
		if err != nil {
			problem.Write(w, r, http.StatusBadRequest, "step must be a duration such as 1m, 1h or 1d")
			return
		}
		step = d
	}
	now := time.Now()
	from, ok := parseTime(q.Get("from"), now.Add(-time.Hour), now)
	if !ok {
		problem.Write(w, r, http.StatusBadRequest, "from must be now, a duration before now such as -1h, or an RFC 3339 time")
		return
	}
	to, ok := parseTime(q.Get("to"), now, now)
	if !ok {
		problem.Write(w, r, http.StatusBadRequest, "to must be now, a duration before now such as -1h, or an RFC 3339 time")
		return
	}
	if err := cfg.CheckSeries(step, from, to, now); err != nil {
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
		out.Buckets[i] = Bucket{Start: b.Start, End: b.End(), Total: b.Total, Status: codecs.SumStatus(b.Status), Endpoints: b.Endpoints,
			EndpointStatus: nonZero(b.Status), Final: b.Final}
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// getUsageWindow is GET /usage/{client}?window=5m, for a known client.
func (h *handler) getUsageWindow(w http.ResponseWriter, r *http.Request, client string) {
	d, err := windows.ParseDuration(r.URL.Query().Get("window"))
	if err != nil {
		problem.Write(w, r, http.StatusBadRequest, "window must be a duration such as 5m, 1h or 7d")
		return
	}
	if _, _, _, err := h.usage.Windows().PlanRange(d, time.Now()); err != nil {
		problem.Write(w, r, http.StatusBadRequest, err.Error())
		return
	}
	sum, err := h.usage.Range(client, d)
	if err != nil {
		h.windowError(w, r, client, err)
		return
	}
	out := WindowUsage{
		ClientUsage: ClientUsage{Client: client, Total: sum.Total, Status: codecs.SumStatus(sum.Status),
			Endpoints: make(map[string]EndpointCount, len(sum.Endpoints))},
		Window: windows.FormatDuration(d), From: sum.From, To: sum.To.UTC(),
	}
	for k, n := range sum.Endpoints {
		out.Endpoints[k] = EndpointCount{Count: n, Status: sum.Status[k]}
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

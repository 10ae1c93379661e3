// Package endpointshttp serves the endpoints group's table over HTTP: GET
// /endpoints (ranked by calls, p99 or error rate), /endpoints/{endpoint}
// (also ?window=) and /endpoints/{endpoint}/series, declared as
// httpx.Routes and read through a views.EndpointReader. See the README
// ("Layout") for the rest.
package endpointshttp

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/auth"
	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/problem"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/processors/endpoints"
	"github.com/inarious/inarious/views"
)

// EndpointPage is GET /endpoints.
type EndpointPage struct {
	Endpoints []endpoints.Summary `json:"endpoints"`
	// Total is how many endpoints the table holds.
	Total int `json:"total"`
	// NextCursor continues after the last row; empty on the last page.
	NextCursor string `json:"next_cursor"`
}

// WindowSummary is GET /endpoints/{endpoint}?window=: the summary of the
// calls in the buckets of the last window, with the span they cover.
type WindowSummary struct {
	endpoints.Summary
	Window string    `json:"window"`
	Step   string    `json:"step"`
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
}

// Bucket is one bucket of GET /endpoints/{endpoint}/series.
type Bucket struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Step  string    `json:"step"`
	// Final is false while late calls may still change the bucket.
	Final   bool              `json:"final"`
	Summary endpoints.Summary `json:"summary"`
}

// Series is GET /endpoints/{endpoint}/series.
type Series struct {
	Endpoint string    `json:"endpoint"`
	Step     string    `json:"step"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Buckets  []Bucket  `json:"buckets"`
}

// maxEndpointLen bounds an endpoint's name: "METHOD /route template".
const maxEndpointLen = 512

type handler struct {
	reader views.EndpointReader
	log    *slog.Logger
}

// Option configures Routes.
type Option func(*handler)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(log *slog.Logger) Option { return func(h *handler) { h.log = log } }

// Routes are the endpoint routes, reading through reader. The endpoint is
// one path segment, URL-escaped ("GET%20%2Fusers%2F%7Bid%7D"), hence
// Escaped routes.
func Routes(reader views.EndpointReader, opts ...Option) []httpx.Route {
	h := &handler{reader: reader, log: slog.Default()}
	for _, o := range opts {
		o(h)
	}
	return []httpx.Route{
		{Method: http.MethodGet, Path: "/endpoints", Scope: auth.UsageRead, Handler: http.HandlerFunc(h.list)},
		{Method: http.MethodGet, Path: "/endpoints/{endpoint}", Scope: auth.UsageRead, Escaped: true, Handler: http.HandlerFunc(h.get)},
		{Method: http.MethodGet, Path: "/endpoints/{endpoint}/series", Scope: auth.UsageRead, Escaped: true, Handler: http.HandlerFunc(h.series)},
		{Method: http.MethodGet, Path: "/services", Scope: auth.UsageRead, Handler: http.HandlerFunc(h.services)},
	}
}

// endpointOf reads the {endpoint} variable, or answers 400. With
// ?service= it is that service's endpoint.
func endpointOf(w http.ResponseWriter, r *http.Request) (string, bool) {
	e, ok := httpx.EscapedVar(r, "endpoint")
	if !ok || e == "" || len(e) > maxEndpointLen || !utf8.ValidString(e) {
		problem.Write(w, r, http.StatusBadRequest, "endpoint must be URL-escaped valid UTF-8 of at most 512 bytes, e.g. GET%20%2Fusers%2F%7Bid%7D")
		return "", false
	}
	service, narrowed, ok := httpx.ServiceParam(w, r)
	if !ok {
		return "", false
	}
	if narrowed {
		e = codecs.ServiceEndpointKey(service, e)
	}
	return e, true
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	e, ok := endpointOf(w, r)
	if !ok {
		return
	}
	s, found, err := h.reader.Endpoint(e)
	if err != nil {
		h.fail(w, r, e, err)
		return
	}
	if !found {
		problem.Write(w, r, http.StatusNotFound, "no calls recorded for endpoint "+strconv.Quote(e))
		return
	}
	if !r.URL.Query().Has("window") {
		httpx.WriteJSON(w, http.StatusOK, s)
		return
	}
	d, err := h.reader.Windows().ParseWindow(r.URL.Query().Get("window"), time.Now())
	if err != nil {
		problem.Write(w, r, http.StatusBadRequest, err.Error())
		return
	}
	sum, err := h.reader.EndpointRange(e, d)
	if err != nil {
		h.fail(w, r, e, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, WindowSummary{Summary: sum.Summary, Window: windows.FormatDuration(d),
		Step: windows.FormatDuration(sum.Step), From: sum.From.UTC(), To: sum.To.UTC()})
}

func (h *handler) series(w http.ResponseWriter, r *http.Request) {
	e, ok := endpointOf(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	step, from, to, err := h.reader.Windows().ParseSeries(q.Get("step"), q.Get("from"), q.Get("to"), time.Now())
	if err != nil {
		problem.Write(w, r, http.StatusBadRequest, err.Error())
		return
	}
	buckets, err := h.reader.EndpointSeries(e, step, from, to)
	if err != nil {
		h.fail(w, r, e, err)
		return
	}
	out := Series{Endpoint: e, Step: windows.FormatDuration(step), From: from.UTC(), To: to.UTC(), Buckets: make([]Bucket, len(buckets))}
	for i, b := range buckets {
		out.Buckets[i] = Bucket{Start: b.Start.UTC(), End: b.Start.Add(b.Step).UTC(), Step: windows.FormatDuration(b.Step), Final: b.Final, Summary: b.Summary}
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	order := views.ByCalls
	if v := q.Get("order"); v != "" {
		order = views.EndpointOrder(v)
		if !order.Valid() {
			problem.Write(w, r, http.StatusBadRequest, "order must be calls, p99 or error_rate")
			return
		}
	}
	limit := defaultPageSize
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			problem.Write(w, r, http.StatusBadRequest, "limit must be an integer from 1 to 1000")
			return
		}
		limit = n
	}
	var after *views.EndpointCursor
	if c := q.Get("cursor"); c != "" {
		k, err := DecodeCursor(order, c)
		if err != nil {
			problem.Write(w, r, http.StatusBadRequest, "cursor is not valid for this order; use next_cursor from a previous page")
			return
		}
		after = &k
	}
	service, narrowed, ok := httpx.ServiceParam(w, r)
	if !ok {
		return
	}
	// Before recovery the index holds part of the table.
	if !h.reader.Recovered() {
		problem.Write(w, r, http.StatusServiceUnavailable, "endpoints table is not available")
		return
	}
	var p views.EndpointPage
	var err error
	if narrowed {
		p, err = h.serviceEndpoints(service, order, after, limit+1)
	} else {
		p, err = h.reader.Endpoints(order, after, limit+1) // one more tells whether a next page exists
	}
	if err != nil {
		h.fail(w, r, "", err)
		return
	}
	rows := p.Rows
	page := EndpointPage{Total: p.Endpoints}
	if len(rows) > limit {
		rows = rows[:limit]
		page.NextCursor = EncodeCursor(order, order.Cursor(rows[limit-1]))
	}
	page.Endpoints = append(make([]endpoints.Summary, 0, len(rows)), rows...)
	httpx.WriteJSON(w, http.StatusOK, page)
}

// serviceEndpoints is the page of order's list after after narrowed to
// service's endpoints, Endpoints counting all of them. The index ranks all
// services together, so this reads the whole list: fine for the thousands
// of endpoints a table holds.
func (h *handler) serviceEndpoints(service string, order views.EndpointOrder, after *views.EndpointCursor, limit int) (views.EndpointPage, error) {
	var page views.EndpointPage
	err := views.ScanEndpoints(h.reader, order, after, func(s endpoints.Summary) bool {
		if codecs.InService(s.Endpoint, service) {
			page.Rows = append(page.Rows, s)
		}
		return len(page.Rows) < limit
	})
	if err != nil {
		return page, err
	}
	err = views.ScanEndpoints(h.reader, order, nil, func(s endpoints.Summary) bool {
		if codecs.InService(s.Endpoint, service) {
			page.Endpoints++
		}
		return true
	})
	return page, err
}

// fail answers a reader's error: 400 for a query it cannot answer, else as
// the error says (a routed read without owner: 503 with Retry-After).
func (h *handler) fail(w http.ResponseWriter, r *http.Request, endpoint string, err error) {
	var qe *windows.QueryError
	if errors.As(err, &qe) {
		problem.Write(w, r, http.StatusBadRequest, qe.Error())
		return
	}
	h.log.Error("endpoints lookup failed", "endpoint", strconv.Quote(endpoint), "err", err)
	problem.WriteError(w, r, err, "endpoints table is not available")
}

// cursorVersion leads every cursor, so its format can change later.
const cursorVersion = 1

// EncodeCursor makes the opaque cursor of a row position in order's list:
// the position (value and endpoint), not an offset, so pages stay right
// while the table changes. It names its order, so it continues no other.
func EncodeCursor(order views.EndpointOrder, c views.EndpointCursor) string {
	b := make([]byte, 0, 2+8+len(c.Endpoint))
	b = append(b, cursorVersion, byte(slices.Index(views.Orders, order)))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(c.Value))
	b = append(b, c.Endpoint...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor reads a cursor EncodeCursor made for order.
func DecodeCursor(order views.EndpointOrder, s string) (views.EndpointCursor, error) {
	if len(s) > maxCursorLen {
		return views.EndpointCursor{}, errBadCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 11 || b[0] != cursorVersion || int(b[1]) != slices.Index(views.Orders, order) {
		return views.EndpointCursor{}, errBadCursor
	}
	v := math.Float64frombits(binary.BigEndian.Uint64(b[2:10]))
	e := b[10:]
	if math.IsNaN(v) || len(e) > maxEndpointLen || !utf8.Valid(e) {
		return views.EndpointCursor{}, errBadCursor
	}
	return views.EndpointCursor{Value: v, Endpoint: string(e)}, nil
}

var errBadCursor = errors.New("cursor is not valid")

// maxCursorLen bounds what is decoded: a cursor of the longest endpoint.
var maxCursorLen = base64.RawURLEncoding.EncodedLen(2 + 8 + maxEndpointLen)

// ServiceList is GET /services.
type ServiceList struct {
	Services []views.ServiceSummary `json:"services"`
}

func (h *handler) services(w http.ResponseWriter, r *http.Request) {
	if !h.reader.Recovered() {
		problem.Write(w, r, http.StatusServiceUnavailable, "endpoints table is not available")
		return
	}
	list, err := views.Services(h.reader)
	if err != nil {
		h.fail(w, r, "", err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, ServiceList{Services: list})
}

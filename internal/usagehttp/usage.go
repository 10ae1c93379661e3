// Package usagehttp serves the usage group's tables over HTTP: GET /usage,
// /usage/{client} (also ?window=) and /usage/{client}/series, declared as
// httpx.Routes and read through a views.UsageReader, local or routed. See the
// README ("Try it", "Windowed usage").
package usagehttp

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/auth"
	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/problem"
	"github.com/inarious/inarious/internal/top"
	"github.com/inarious/inarious/views"
)

// ClientUsage is GET /usage/{client}.
type ClientUsage = codecs.UsageDoc

// EndpointCount is one endpoint's usage in a ClientUsage.
type EndpointCount = codecs.EndpointDoc

// ClientTotal is one row of GET /usage.
type ClientTotal struct {
	Client   string     `json:"client"`
	Total    uint64     `json:"total"`
	LastSeen *time.Time `json:"last_seen,omitempty"`
}

// UsagePage is GET /usage. With ?service= its rows are the service's
// clients, each with its calls to the service as Total and the last of
// them as LastSeen, and Total counts the service's clients.
type UsagePage struct {
	Clients []ClientTotal `json:"clients"`
	Total   int           `json:"total_clients"`
	// NextCursor continues after the last row; empty on the last page.
	NextCursor string `json:"next_cursor"`
}

const maxClientLen = 256

// handler reads the usage group's tables.
type handler struct {
	usage views.UsageReader
	log   *slog.Logger
}

// Option configures Routes.
type Option func(*handler)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(log *slog.Logger) Option { return func(h *handler) { h.log = log } }

// Routes are the usage routes, reading through usage.
func Routes(usage views.UsageReader, opts ...Option) []httpx.Route {
	h := &handler{usage: usage, log: slog.Default()}
	for _, o := range opts {
		o(h)
	}
	return []httpx.Route{
		// The list shows every client.
		{Method: http.MethodGet, Path: "/usage", Scope: auth.Admin, Handler: http.HandlerFunc(h.listUsage)},
		{Method: http.MethodGet, Path: "/usage/{client}", Scope: auth.UsageRead, Own: true, Handler: http.HandlerFunc(h.getUsage)},
		{Method: http.MethodGet, Path: "/usage/{client}/series", Scope: auth.UsageRead, Own: true, Handler: http.HandlerFunc(h.getSeries)},
	}
}

func (h *handler) getUsage(w http.ResponseWriter, r *http.Request) {
	client := mux.Vars(r)["client"]
	if len(client) > maxClientLen || !utf8.ValidString(client) {
		problem.Write(w, r, http.StatusBadRequest, "client must be valid UTF-8 of at most 256 bytes")
		return
	}
	u, err := h.usage.Get(client)
	if err != nil {
		h.log.Error("usage lookup failed", "client", client, "err", err)
		problem.WriteError(w, r, err, "usage table is not available")
		return
	}
	if u == nil {
		problem.Write(w, r, http.StatusNotFound, "no usage recorded for client "+strconv.Quote(client))
		return
	}
	service, narrowed, ok := httpx.ServiceParam(w, r)
	if !ok {
		return
	}
	if r.URL.Query().Has("window") {
		h.getUsageWindow(w, r, client, service, narrowed)
		return
	}
	doc := codecs.UsageDocOf(u)
	if narrowed {
		doc = doc.OfService(service)
	}
	httpx.WriteJSON(w, http.StatusOK, doc)
}

const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// cursorVersion leads every cursor, so its format can change later.
const cursorVersion = 1

// EncodeCursor makes the opaque cursor of a row position: the position, not
// an offset, so pages stay right while counts change.
func EncodeCursor(k top.Key) string {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(k.Client))
	b = append(b, cursorVersion)
	b = binary.AppendUvarint(b, k.Total)
	b = append(b, k.Client...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor reads a cursor made by EncodeCursor.
func DecodeCursor(s string) (top.Key, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 2 || b[0] != cursorVersion {
		return top.Key{}, errBadCursor
	}
	total, n := binary.Uvarint(b[1:])
	client := b[1+max(n, 0):]
	if n <= 0 || len(client) == 0 || len(client) > maxClientLen || !utf8.Valid(client) {
		return top.Key{}, errBadCursor
	}
	return top.Key{Total: total, Client: string(client)}, nil
}

var errBadCursor = errors.New("cursor is not valid")

// maxCursorLen bounds what is decoded: a cursor of the longest client.
var maxCursorLen = base64.RawURLEncoding.EncodedLen(1 + binary.MaxVarintLen64 + maxClientLen)

func (h *handler) listUsage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := defaultPageSize
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			problem.Write(w, r, http.StatusBadRequest, "limit must be an integer from 1 to 1000")
			return
		}
		limit = n
	}
	ranking := top.AllCalls
	service, narrowed, ok := httpx.ServiceParam(w, r)
	if !ok {
		return
	}
	if narrowed {
		ranking = top.ByService(service)
	}
	if q.Has("offset") {
		problem.Write(w, r, http.StatusBadRequest, "offset is not supported: page with cursor, the next_cursor of the previous page")
		return
	}
	var after *top.Key
	if c := q.Get("cursor"); c != "" {
		var k top.Key
		err := errBadCursor
		if len(c) <= maxCursorLen {
			k, err = DecodeCursor(c)
		}
		if err != nil {
			problem.Write(w, r, http.StatusBadRequest, "cursor is not valid; use next_cursor from a previous page")
			return
		}
		after = &k
	}
	// Before recovery the index holds part of the table.
	if !h.usage.Recovered() {
		problem.Write(w, r, http.StatusServiceUnavailable, "usage table is not available")
		return
	}
	ranked, err := h.usage.Top(ranking, after, limit+1) // one more tells whether a next page exists
	rows, clients := ranked.Rows, ranked.Clients
	if err != nil {
		problem.WriteError(w, r, err, "usage table is not available")
		return
	}
	page := UsagePage{Total: clients, Clients: make([]ClientTotal, 0, min(len(rows), limit))}
	if len(rows) > limit {
		rows = rows[:limit]
		page.NextCursor = EncodeCursor(rows[limit-1].Key())
	}
	for _, row := range rows {
		ct := ClientTotal{Client: row.Client, Total: row.Total}
		if row.LastSeen != 0 {
			t := time.Unix(0, row.LastSeen).UTC()
			ct.LastSeen = &t
		}
		page.Clients = append(page.Clients, ct)
	}
	httpx.WriteJSON(w, http.StatusOK, page)
}

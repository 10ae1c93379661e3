// Package httpx holds what the HTTP parts share: the route declaration, the
// status a handler wrote and the route template mux matched.
package httpx

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/gorilla/mux"

	"github.com/inarious/inarious/internal/auth"
)

// UnmatchedRoute stands for the route of requests no route matched, in
// metrics and activity events, so arbitrary paths cannot grow the tables.
const UnmatchedRoute = "(unmatched)"

// Route declares one route once: the API's router mounts it, its auth
// policy is built from it and the OpenAPI test checks it against the
// document.
type Route struct {
	// Method is the one method the route answers (GET also answers HEAD);
	// empty answers every method, for prefix routes that dispatch further.
	Method string
	// Path is a mux path template, e.g. "/users/{id}"; it is also the
	// route's name in metrics and activity events, so ids never become labels.
	Path string
	// Prefix matches every path that starts with Path (static files, debug pages).
	Prefix bool
	// Scope is what an API key needs here when keys are on: auth.Public for none.
	Scope auth.Scope
	// Own also requires the {client} path variable to be the key's own
	// client, unless the key is admin.
	Own bool
	// Escaped matches the path on its escaped form, so one variable may
	// hold an escaped slash (%2F), e.g. an endpoint "GET /users/{id}" in
	// one segment; the handler reads it with EscapedVar. The router
	// otherwise matches the unescaped path, where %2F is a separator.
	Escaped bool
	Handler http.Handler
}

// Methods are the methods r answers, nil for every method.
func (r Route) Methods() []string {
	switch r.Method {
	case "":
		return nil
	case http.MethodGet:
		return []string{http.MethodGet, http.MethodHead}
	}
	return []string{r.Method}
}

// Mount adds routes to router in order.
func Mount(router *mux.Router, routes []Route) {
	for _, rt := range routes {
		var m *mux.Route
		switch {
		case rt.Prefix:
			m = router.PathPrefix(rt.Path)
		case rt.Escaped:
			// Only a router matches escaped paths: one of its own keeps the
			// others as they are, and the route in its place in the order.
			m = router.NewRoute().Subrouter().UseEncodedPath().Path(rt.Path)
		default:
			m = router.Path(rt.Path)
		}
		if methods := rt.Methods(); methods != nil {
			m.Methods(methods...)
		}
		m.Handler(rt.Handler)
	}
}

// candidateMethods are the methods Allowed tries, in the order it lists them.
var candidateMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
	http.MethodPatch, http.MethodDelete,
}

// Allowed is the methods router serves at r's path, for the Allow header
// of a 405 (RFC 9110 §15.5.6 requires it). mux does not report them, so
// each method is matched in turn; only 405s pay for it.
func Allowed(router *mux.Router, r *http.Request) []string {
	var out []string
	for _, m := range candidateMethods {
		r2 := *r
		r2.Method = m
		var match mux.RouteMatch
		if router.Match(&r2, &match) && match.MatchErr == nil {
			out = append(out, m)
		}
	}
	return out
}

// EscapedVar is the path variable name of an Escaped route, unescaped; ok
// is false when it is not validly escaped.
func EscapedVar(r *http.Request, name string) (string, bool) {
	v, err := url.PathUnescape(mux.Vars(r)[name])
	return v, err == nil
}

// StatusRecorder remembers the status a handler wrote, for middlewares
// that report it; streaming handlers keep working through it. The
// middleware that made it may also leave the request's start and route
// template on it, so the layers inside need not find them again.
type StatusRecorder struct {
	http.ResponseWriter
	status int
	// Start is when the outermost middleware took the request; zero if unset.
	Start time.Time
	// Route is the template of the matched route, "" if unknown here.
	Route string
}

// NewStatusRecorder wraps w.
func NewStatusRecorder(w http.ResponseWriter) *StatusRecorder {
	return &StatusRecorder{ResponseWriter: w}
}

// Recorder is w itself when an outer middleware already records the status
// through it (every write reaches it, so it sees the same status), else a
// new recorder around w: one allocation per request instead of one per layer.
func Recorder(w http.ResponseWriter) *StatusRecorder {
	if rec, ok := w.(*StatusRecorder); ok {
		return rec
	}
	return NewStatusRecorder(w)
}

// Status is the status written, 200 when the handler wrote none.
func (s *StatusRecorder) Status() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}

func (s *StatusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *StatusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and deadlines underneath.
func (s *StatusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Flush keeps streaming handlers working through the recorder.
func (s *StatusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack lets handlers that take over the connection (WebSockets) do so
// through the recorder, also those that assert http.Hijacker rather than
// use http.ResponseController.
func (s *StatusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if s.status == 0 {
		s.status = http.StatusSwitchingProtocols
	}
	return http.NewResponseController(s.ResponseWriter).Hijack()
}

// RouteTemplate is the template of the route mux matched for r ("/users/{id}"),
// or "" when none did. Only inside the router is the route known.
func RouteTemplate(r *http.Request) string {
	if cur := mux.CurrentRoute(r); cur != nil {
		if t, err := cur.GetPathTemplate(); err == nil {
			return t
		}
	}
	return ""
}

// WriteJSON answers v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

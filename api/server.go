// Package api is the HTTP server of Inarious' API: it mounts the routes the
// components declare (httpx.Route), with auth, the activity middleware that
// emits an event per request (package middleware, as any Go service's),
// /healthz, /readyz and the API document. See the README for the rest.
package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/gorilla/mux"

	"github.com/inarious/inarious/internal/auth"
	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/problem"
	"github.com/inarious/inarious/middleware"
)

// Server holds what the handlers need.
type Server struct {
	router    *mux.Router
	routes    []httpx.Route
	publisher *Publisher
	clients   *ClientResolver
	log       *slog.Logger
	checks    []ReadinessCheck
	recovered []func() bool
}

// options are what New is given besides its own routes.
type options struct {
	routes     []httpx.Route
	middleware []func(http.Handler) http.Handler
	gates      []Gate
	keys       *auth.Keys
	log        *slog.Logger
	checks     []ReadinessCheck
	recovered  []func() bool
	// The publisher's.
	holdUntil        <-chan struct{}
	produceOnPublish bool
}

func newOptions(opts []Option) options {
	o := options{log: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	return o
}

// ReadinessCheck is a further condition of /readyz, e.g. the schema
// registry: Check reports whether it holds and a status to show.
type ReadinessCheck struct {
	Name  string
	Check func() (ready bool, status any)
}

// Option configures New and the publisher (NewPublisher); each takes the
// options that concern it.
type Option func(*options)

// WithRoutes serves routes of other packages (users, dashboard, metrics)
// after the API's own; they get the activity middleware and auth policy
// every route gets.
func WithRoutes(routes ...httpx.Route) Option {
	return func(o *options) { o.routes = append(o.routes, routes...) }
}

// WithMiddleware wraps every request, matched or not, inside the router, so
// mw sees mux.CurrentRoute (e.g. to label metrics by route template).
func WithMiddleware(mw func(http.Handler) http.Handler) Option {
	return func(o *options) { o.middleware = append(o.middleware, mw) }
}

// Gate wraps a route's handler inside auth, knowing the route and
// clientOf, the client a request is counted under (the API key's client,
// else the caller's address); e.g. quota enforcement (internal/quotas/enforce).
type Gate func(rt httpx.Route, clientOf func(*http.Request) string, next http.Handler) http.Handler

// WithGate puts gate on every route, between auth and the handler.
func WithGate(gate Gate) Option { return func(o *options) { o.gates = append(o.gates, gate) } }

// WithAPIKeys turns API keys on: each route then needs a key with its
// declared scope. With no keys the API is open.
func WithAPIKeys(keys *auth.Keys) Option { return func(o *options) { o.keys = keys } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(log *slog.Logger) Option { return func(o *options) { o.log = log } }

// WithReadinessCheck makes /readyz depend on c and show its status.
func WithReadinessCheck(c ReadinessCheck) Option {
	return func(o *options) { o.checks = append(o.checks, c) }
}

// WithRecovered makes /readyz's view_recovered (and so ready) depend on
// recovered: a served table's read side covers the whole table.
func WithRecovered(recovered func() bool) Option {
	return func(o *options) { o.recovered = append(o.recovered, recovered) }
}

// New builds the API handler from its own routes and those of opts. A route
// without a scope, or declared twice, is an error.
func New(publisher *Publisher, clients *ClientResolver, opts ...Option) (*Server, error) {
	o := newOptions(opts)
	s := &Server{
		router:    mux.NewRouter(),
		publisher: publisher,
		clients:   clients,
		log:       o.log,
		checks:    o.checks,
		recovered: o.recovered,
	}
	s.routes = append(s.ownRoutes(), o.routes...)
	policy, err := authPolicy(s.routes)
	if err != nil {
		return nil, err
	}

	// The middleware chain is built once per route here, not with
	// Router.Use, which makes mux build it anew for every request
	// (closures and allocations on the hot path). Each layer still runs
	// inside the router, so mux.CurrentRoute is known to it.
	activityOpts := []middleware.Option{middleware.WithClientAddress(clients.Resolve), middleware.WithLogger(o.log)}
	if o.keys.Len() > 0 {
		// The auth middleware counts a request under its key's client.
		activityOpts = append(activityOpts, middleware.WithSetClient())
	}
	activity := middleware.NewWithBuffer(publisher.Buffer, activityOpts...)
	authorize := auth.Middleware(o.keys, policy, middleware.SetClient)
	// route is the template of the route h serves, "" where mux decides
	// (not found, method not allowed). The activity middleware is the
	// outermost: its status recorder, with the start and route on it, is
	// shared by the layers inside (httpx.Recorder).
	observe := func(route string, h http.Handler) http.Handler {
		for i := len(o.middleware) - 1; i >= 0; i-- {
			h = o.middleware[i](h)
		}
		return activity.WrapRoute(route, h)
	}
	// Auth is innermost: inside the activity middleware, which then counts
	// an authenticated request under the key's client name, and inside the
	// metrics middleware, which then sees 401s and 403s. Requests that
	// match no route skip it.
	r := s.router
	r.SkipClean(true) // ServeHTTP cleans the escaped path
	r.NotFoundHandler = observe("", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, http.StatusNotFound, "no such resource")
	}))
	r.MethodNotAllowedHandler = observe("", http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", strings.Join(httpx.Allowed(r, req), ", "))
		problem.Write(w, req, http.StatusMethodNotAllowed, "method "+req.Method+" is not allowed here")
	}))
	mounted := slices.Clone(s.routes)
	for i, rt := range mounted {
		h := rt.Handler
		for _, gate := range slices.Backward(o.gates) {
			h = gate(rt, s.clientOf, h)
		}
		mounted[i].Handler = observe(rt.Path, authorize(h))
	}
	httpx.Mount(r, mounted)
	return s, nil
}

// clientOf is the client r is counted under, as recordActivity counts it.
func (s *Server) clientOf(r *http.Request) string {
	if p, ok := auth.FromContext(r.Context()); ok {
		return p.Client
	}
	host, _ := s.clients.Resolve(r)
	return host
}

// ownRoutes are the routes this package serves.
func (s *Server) ownRoutes() []httpx.Route {
	return []httpx.Route{
		{Method: http.MethodGet, Path: "/", Scope: auth.Public, Handler: http.HandlerFunc(s.index)},
		{Method: http.MethodGet, Path: "/healthz", Scope: auth.Public, Handler: http.HandlerFunc(s.healthz)},
		{Method: http.MethodGet, Path: "/readyz", Scope: auth.Public, Handler: http.HandlerFunc(s.readyz)},
		{Method: http.MethodGet, Path: "/openapi.json", Scope: auth.Public, Handler: http.HandlerFunc(serveOpenAPI)},
	}
}

// authPolicy turns the route table into the auth rules, after checking
// what the router needs of each route.
func authPolicy(routes []httpx.Route) (*auth.Policy, error) {
	rules := make([]auth.Rule, 0, len(routes))
	for _, rt := range routes {
		if !strings.HasPrefix(rt.Path, "/") || rt.Handler == nil {
			return nil, fmt.Errorf("api: route %s %q needs a path starting with / and a handler", rt.Method, rt.Path)
		}
		rules = append(rules, auth.Rule{Methods: rt.Methods(), Template: rt.Path, Scope: rt.Scope, Own: rt.Own})
	}
	policy, err := auth.NewPolicy(rules)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	return policy, nil
}

// ServeHTTP serves the API. A trailing slash names the same resource as
// without it (the original API's clients call /users/), with no redirect,
// which a client would follow with GET whatever the method was.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// mux would clean the unescaped path, so an escaped slash in one segment
	// ("GET%20%2F%2Fx") would redirect; clean the escaped path instead.
	if p := r.URL.EscapedPath(); p != "" {
		if c := cleanPath(p); c != p {
			if r.URL.RawQuery != "" {
				c += "?" + r.URL.RawQuery
			}
			w.Header().Set("Location", c)
			w.WriteHeader(http.StatusMovedPermanently)
			return
		}
	}
	if p := r.URL.Path; len(p) > 1 && strings.HasSuffix(p, "/") && r.URL.RawPath == "" {
		var m mux.RouteMatch
		if !s.router.Match(r, &m) || errors.Is(m.MatchErr, mux.ErrNotFound) {
			u := *r.URL
			u.Path = strings.TrimSuffix(p, "/")
			r2 := *r
			r2.URL = &u
			r = &r2
		}
	}
	s.router.ServeHTTP(w, r)
}

// cleanPath is p without empty, . and .. segments, keeping a trailing
// slash, as mux cleans paths. A segment of percent-encoded dots ("%2e%2e")
// is a dot segment too (RFC 3986, 6.2.2.2: dots are unreserved).
func cleanPath(p string) string {
	if p[0] != '/' {
		p = "/" + p
	}
	c := path.Clean(decodeDotSegments(p))
	if p[len(p)-1] == '/' && c != "/" {
		c += "/"
	}
	return c
}

// decodeDotSegments turns the segments of p that spell . or .. with
// percent-encoded dots into . and ..; other segments stay as sent.
func decodeDotSegments(p string) string {
	if !strings.Contains(p, "%2") {
		return p
	}
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		if d := strings.ReplaceAll(strings.ReplaceAll(seg, "%2e", "."), "%2E", "."); d == "." || d == ".." {
			segs[i] = d
		}
	}
	return strings.Join(segs, "/")
}

// indexLinks is GET /: where to go from the root.
var indexLinks = map[string]string{
	"openapi":      "/openapi.json",
	"dashboard":    "/dashboard",
	"usage":        "/usage",
	"client_usage": "/usage/{client}",
	"users":        "/users",
	"health":       "/healthz",
	"readiness":    "/readyz",
	"metrics":      "/metrics",
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"name": "inarious", "links": indexLinks})
}

// Routes is a copy of the route table the router serves, e.g. for checking
// it against the API document.
func (s *Server) Routes() []httpx.Route { return slices.Clone(s.routes) }

// health is the body of /healthz.
type health struct {
	Status string `json:"status"`
}

// healthzBody is encoded once: /healthz is probed often, and what it says
// never changes.
var healthzBody = func() []byte {
	b, err := json.Marshal(health{Status: "ok"})
	if err != nil {
		panic(err)
	}
	return append(b, '\n') // as json.Encoder ends it
}()

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header()["Content-Type"] = []string{"application/json"}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(healthzBody)
}

// readiness is the body of /readyz.
type readiness struct {
	Ready         bool           `json:"ready"`
	ViewRecovered bool           `json:"view_recovered"`
	EmitterOK     bool           `json:"emitter_ok"`
	Events        PublisherStats `json:"events"`
	Checks        map[string]any `json:"checks,omitempty"`
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	rd := readiness{
		ViewRecovered: true,
		EmitterOK:     s.publisher.Healthy(),
		Events:        s.publisher.Stats(),
	}
	for _, recovered := range s.recovered {
		rd.ViewRecovered = rd.ViewRecovered && recovered()
	}
	rd.Ready = rd.ViewRecovered && rd.EmitterOK
	for _, c := range s.checks {
		ok, status := c.Check()
		if rd.Checks == nil {
			rd.Checks = make(map[string]any, len(s.checks))
		}
		rd.Checks[c.Name] = status
		rd.Ready = rd.Ready && ok
	}
	status := http.StatusOK
	if !rd.Ready {
		status = http.StatusServiceUnavailable
	}
	httpx.WriteJSON(w, status, rd)
}

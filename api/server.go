// Package api serves Inarious' REST API: usage read from the usage view,
// and an activity event emitted for every request.
package api

import (
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/problem"
	"github.com/inarious/inarious/views"
)

// UsageReader is the read side of the usage table (views.Usage in production).
type UsageReader interface {
	Get(client string) (*activitypb.ClientUsage, error)
	// Page lists clients by total calls from the top-clients index.
	Page(after *views.TopKey, limit int) []views.TopRow
	// Clients is the number of clients, in O(1).
	Clients() int
	Recovered() bool
}

// Server holds what the handlers need.
type Server struct {
	router    *mux.Router
	usage     UsageReader
	publisher *Publisher
	clients   *ClientResolver
	log       *slog.Logger
}

// Option adds to the router, e.g. to mount the users resource.
type Option func(*Server)

// WithRoutes lets another package register routes; they get the same
// activity middleware as every other route.
func WithRoutes(register func(r *mux.Router)) Option {
	return func(s *Server) { register(s.router) }
}

// WithMiddleware wraps every request, matched or not, inside the router, so
// mw sees mux.CurrentRoute (e.g. to label metrics by route template).
func WithMiddleware(mw mux.MiddlewareFunc) Option {
	return func(s *Server) {
		s.router.Use(mw)
		s.router.NotFoundHandler = mw(s.router.NotFoundHandler)
		s.router.MethodNotAllowedHandler = mw(s.router.MethodNotAllowedHandler)
	}
}

// WithLogger sets the logger.
func WithLogger(log *slog.Logger) Option { return func(s *Server) { s.log = log } }

// New builds the API handler.
func New(usage UsageReader, publisher *Publisher, clients *ClientResolver, opts ...Option) *Server {
	s := &Server{
		router:    mux.NewRouter(),
		usage:     usage,
		publisher: publisher,
		clients:   clients,
		log:       slog.Default(),
	}
	r := s.router
	r.Use(s.recordActivity)
	r.NotFoundHandler = s.recordActivity(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, http.StatusNotFound, "no such resource")
	}))
	r.MethodNotAllowedHandler = s.recordActivity(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed here")
	}))
	r.HandleFunc("/healthz", s.healthz).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/readyz", s.readyz).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/usage", s.listUsage).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/usage/{client}", s.getUsage).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/openapi.json", serveOpenAPI).Methods(http.MethodGet, http.MethodHead)
	for _, o := range opts {
		o(s)
	}
	return s
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

// Router exposes the router, e.g. for checking routes against the API document.
func (s *Server) Router() *mux.Router { return s.router }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readiness is the body of /readyz.
type readiness struct {
	Ready         bool           `json:"ready"`
	ViewRecovered bool           `json:"view_recovered"`
	EmitterOK     bool           `json:"emitter_ok"`
	Events        PublisherStats `json:"events"`
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	rd := readiness{
		ViewRecovered: s.usage.Recovered(),
		EmitterOK:     s.publisher.Healthy(),
		Events:        s.publisher.Stats(),
	}
	rd.Ready = rd.ViewRecovered && rd.EmitterOK
	status := http.StatusOK
	if !rd.Ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, rd)
}

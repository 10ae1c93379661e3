// Package userhttp exposes a users.Store as a JSON REST resource under /users.
package userhttp

import (
	"log/slog"
	"net/http"

	"github.com/gorilla/mux"
	"github.com/inarious/inarious/internal/users"
)

// DefaultMaxBodyBytes caps request bodies; a user document is tiny.
const DefaultMaxBodyBytes int64 = 64 << 10

// Option configures Register.
type Option func(*handler)

// WithLogger sets where unexpected store errors are logged (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(h *handler) {
		if l != nil {
			h.log = l
		}
	}
}

// WithMaxBodyBytes changes the request body limit; larger bodies get 413.
func WithMaxBodyBytes(n int64) Option {
	return func(h *handler) {
		if n > 0 {
			h.maxBody = n
		}
	}
}

type handler struct {
	store   users.Store
	log     *slog.Logger
	maxBody int64
	item    *mux.Route // builds Location URLs, honouring any subrouter prefix
}

// Register adds the /users routes to r. Routes use path templates
// ("/users/{id}") so middleware can label metrics by template, not by raw path.
func Register(r *mux.Router, s users.Store, opts ...Option) {
	h := &handler{store: s, log: slog.Default(), maxBody: DefaultMaxBodyBytes}
	for _, o := range opts {
		o(h)
	}
	r.HandleFunc("/users", h.create).Methods(http.MethodPost)
	r.HandleFunc("/users", h.list).Methods(http.MethodGet)
	h.item = r.HandleFunc("/users/{id}", h.get).Methods(http.MethodGet)
	r.HandleFunc("/users/{id}", h.replace).Methods(http.MethodPut)
	r.HandleFunc("/users/{id}", h.patch).Methods(http.MethodPatch)
	r.HandleFunc("/users/{id}", h.delete).Methods(http.MethodDelete)
}

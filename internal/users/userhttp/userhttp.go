// Package userhttp exposes a users.Store as a JSON REST resource under /users.
package userhttp

import (
	"log/slog"
	"net/http"

	"github.com/inarious/inarious/internal/auth"
	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/users"
)

// DefaultMaxBodyBytes caps request bodies; a user document is tiny.
const DefaultMaxBodyBytes int64 = 64 << 10

// Option configures Routes.
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
}

// Routes is the /users resource. Paths are templates ("/users/{id}") so
// middleware labels metrics by template, not by raw path.
func Routes(s users.Store, opts ...Option) []httpx.Route {
	h := &handler{store: s, log: slog.Default(), maxBody: DefaultMaxBodyBytes}
	for _, o := range opts {
		o(h)
	}
	return []httpx.Route{
		{Method: http.MethodPost, Path: "/users", Scope: auth.UsersWrite, Handler: http.HandlerFunc(h.create)},
		{Method: http.MethodGet, Path: "/users", Scope: auth.UsersRead, Handler: http.HandlerFunc(h.list)},
		{Method: http.MethodGet, Path: "/users/{id}", Scope: auth.UsersRead, Handler: http.HandlerFunc(h.get)},
		{Method: http.MethodPut, Path: "/users/{id}", Scope: auth.UsersWrite, Handler: http.HandlerFunc(h.replace)},
		{Method: http.MethodPatch, Path: "/users/{id}", Scope: auth.UsersWrite, Handler: http.HandlerFunc(h.patch)},
		{Method: http.MethodDelete, Path: "/users/{id}", Scope: auth.UsersWrite, Handler: http.HandlerFunc(h.delete)},
	}
}

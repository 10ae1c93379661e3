// Package httpx holds what the HTTP middlewares share: the status a handler
// wrote and the route template mux matched.
package httpx

import (
	"net/http"

	"github.com/gorilla/mux"
)

// StatusRecorder remembers the status a handler wrote, for middlewares
// that report it; streaming handlers keep working through it.
type StatusRecorder struct {
	http.ResponseWriter
	status int
}

// NewStatusRecorder wraps w.
func NewStatusRecorder(w http.ResponseWriter) *StatusRecorder {
	return &StatusRecorder{ResponseWriter: w}
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

package middleware_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/middleware"
)

// BenchmarkWrap is what the middleware adds to a request of a ServeMux
// route, the event's encoding included; -benchmem shows its allocations.
func BenchmarkWrap(b *testing.B) {
	routes := http.NewServeMux()
	routes.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {})
	for _, c := range []struct {
		name string
		h    func(*middleware.Middleware) http.Handler
	}{
		{"bare", func(*middleware.Middleware) http.Handler { return routes }},
		{"wrapped", func(m *middleware.Middleware) http.Handler { return m.Wrap(routes) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			m := middleware.New(&testutil.EncodingTransport{}, middleware.WithService("shop"))
			defer func() { _ = m.Close(context.Background()) }()
			h := c.h(m)
			req := httptest.NewRequest(http.MethodGet, "/orders/42", nil)
			req.RemoteAddr = "192.0.2.7:40000"
			w := testutil.NewDiscardWriter()
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, req)
			}
		})
	}
}

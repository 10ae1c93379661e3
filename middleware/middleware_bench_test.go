package middleware_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/middleware"
)

// BenchmarkWrap is what the middleware adds to a request of a ServeMux
// route, the event's encoding included; -benchmem shows its allocations.
func BenchmarkWrap(b *testing.B) {
	routes := http.NewServeMux()
	routes.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {})
	// With quotas: a policy of two limits no call reaches, the answer kept
	// for the whole run (the path of every call between two checks).
	inarious := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"client":"192.0.2.7","allowed":true,"policy":"*","limits":[` +
			`{"window":"1m","limit":1000000000,"remaining":1000000000},{"window":"1d","limit":1000000000,"service":"shop","remaining":1000000000}]}`))
	}))
	defer inarious.Close()
	for _, c := range []struct {
		name string
		h    func(*middleware.Middleware) http.Handler
		opts []middleware.Option
	}{
		{"bare", func(*middleware.Middleware) http.Handler { return routes }, nil},
		{"wrapped", func(m *middleware.Middleware) http.Handler { return m.Wrap(routes) }, nil},
		{"quotas", func(m *middleware.Middleware) http.Handler { return m.Wrap(routes) },
			[]middleware.Option{middleware.WithQuotas(inarious.URL, middleware.QuotaRefresh(time.Hour))}},
	} {
		b.Run(c.name, func(b *testing.B) {
			m := middleware.New(&testutil.EncodingTransport{}, append(c.opts, middleware.WithService("shop"))...)
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

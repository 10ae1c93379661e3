package enforce_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/quotas"
	"github.com/inarious/inarious/internal/quotas/enforce"
)

// BenchmarkGate is the gate's cost per call: one client under a default
// policy of two limits no call reaches, as scripts/quota-overhead.sh runs it.
func BenchmarkGate(b *testing.B) {
	p := policies{quotas.Default: policy(quotas.Default, quotas.Limit{Window: "1m", Limit: quotas.MaxLimit}, quotas.Limit{Window: "1d", Limit: quotas.MaxLimit})}
	l := enforce.New(p, &usage{}, enforce.DefaultConfig())
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	h := l.Gate(httpx.Route{Method: http.MethodGet, Path: "/healthz"}, func(*http.Request) string { return "127.0.0.1" }, ok)
	r := httptest.NewRequest(http.MethodGet, "/healthz", nil)
	w := &headerWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}

type headerWriter struct{ h http.Header }

func (w *headerWriter) Header() http.Header         { return w.h }
func (w *headerWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *headerWriter) WriteHeader(int)             {}

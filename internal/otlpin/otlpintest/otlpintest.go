// Package otlpintest runs a small HTTP service instrumented with the
// OpenTelemetry Go SDK, as a user's service would be: otelhttp records a
// server span per request and otlptracehttp exports the spans to an
// Inarious' POST /v1/traces (or otlptracegrpc to its OTLP/gRPC receiver). The service remembers what it answered, per
// client and endpoint, for tests to compare with the usage table.
package otlpintest

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/inarious/inarious/codecs"
)

// ClientAttribute is the span attribute the service records its caller
// under: Inarious counts the call under it with
// --otlp-client-attribute enduser.id.
const ClientAttribute = "enduser.id"

// ClientHeader carries the caller's identity to the service.
const ClientHeader = "X-Client-Id"

// Route is one of the service's routes and the status it answers.
type Route struct {
	Method, Pattern string
	Status          int
}

// Endpoint is the route as Inarious names it: "GET /orders/{id}".
func (r Route) Endpoint() string { return r.Method + " " + r.Pattern }

// Routes are the service's routes; a 404 from a known route is counted too.
var Routes = []Route{
	{http.MethodGet, "/orders/{id}", http.StatusOK},
	{http.MethodPost, "/carts/{id}/items", http.StatusCreated},
	{http.MethodDelete, "/orders/{id}", http.StatusNoContent},
	{http.MethodGet, "/orders/{id}/invoice", http.StatusNotFound},
}

// Service is the instrumented service.
type Service struct {
	URL  string
	Name string // its service.name

	tp     *sdktrace.TracerProvider
	caller *http.Client

	mu     sync.Mutex
	served map[string]map[string]uint64 // client → endpoint key → answered calls
}

// Start runs the service named name, exporting its spans to inarious (a
// base URL) in gzipped batches of up to 512, until t ends. wrap, when
// given, wraps the exporter (e.g. to send every batch twice).
func Start(t testing.TB, inarious, name string, wrap func(sdktrace.SpanExporter) sdktrace.SpanExporter) *Service {
	t.Helper()
	exp, err := otlptracehttp.New(context.Background(),
		otlptracehttp.WithEndpointURL(strings.TrimRight(inarious, "/")+"/v1/traces"),
		otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
	if err != nil {
		t.Fatal(err)
	}
	return start(t, exp, name, wrap)
}

// StartGRPC is Start with the otlptracegrpc exporter, sending to the
// OTLP/gRPC receiver at addr (host:port, no TLS), gzipped.
func StartGRPC(t testing.TB, addr, name string, wrap func(sdktrace.SpanExporter) sdktrace.SpanExporter) *Service {
	t.Helper()
	exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(addr), otlptracegrpc.WithInsecure(),
		otlptracegrpc.WithCompressor("gzip"))
	if err != nil {
		t.Fatal(err)
	}
	return start(t, exp, name, wrap)
}

func start(t testing.TB, exp sdktrace.SpanExporter, name string, wrap func(sdktrace.SpanExporter) sdktrace.SpanExporter) *Service {
	var e = exp
	if wrap != nil {
		e = wrap(exp)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", name))),
		sdktrace.WithBatcher(e, sdktrace.WithMaxExportBatchSize(512), sdktrace.WithBatchTimeout(50*time.Millisecond)),
	)
	mux := http.NewServeMux()
	for _, r := range Routes {
		mux.HandleFunc(r.Method+" "+r.Pattern, func(w http.ResponseWriter, req *http.Request) {
			if c := req.Header.Get(ClientHeader); c != "" {
				trace.SpanFromContext(req.Context()).SetAttributes(attribute.String(ClientAttribute, c))
			}
			w.WriteHeader(r.Status)
		})
	}
	s := &Service{
		Name:   name,
		tp:     tp,
		caller: &http.Client{Timeout: 10 * time.Second},
		served: map[string]map[string]uint64{},
	}
	srv := httptest.NewServer(otelhttp.NewHandler(mux, name, otelhttp.WithTracerProvider(tp)))
	s.URL = srv.URL
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = tp.Shutdown(ctx)
	})
	return s
}

// Call sends r's request for path as client, and counts it when the
// service answered as the route says.
func (s *Service) Call(t testing.TB, client string, r Route, path string) {
	t.Helper()
	req, err := http.NewRequest(r.Method, s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(ClientHeader, client)
	resp, err := s.caller.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != r.Status {
		t.Fatalf("%s %s: %d, want %d", r.Method, path, resp.StatusCode, r.Status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.served[client] == nil {
		s.served[client] = map[string]uint64{}
	}
	s.served[client][codecs.ServiceEndpointKey(s.Name, r.Endpoint())]++
}

// Flush exports every span ended so far; it fails t if an export failed.
func (s *Service) Flush(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.tp.ForceFlush(ctx); err != nil {
		t.Fatalf("flushing the service's spans: %v", err)
	}
}

// Served is what the service answered, per client and endpoint key (the
// endpoint prefixed by the service's name, as the usage table keys it).
func (s *Service) Served() map[string]map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]map[string]uint64, len(s.served))
	for c, m := range s.served {
		out[c] = maps.Clone(m)
	}
	return out
}

// Twice is an exporter wrapper that sends every batch twice, as an
// exporter does whose first response was lost: Inarious must count the
// spans once.
func Twice(e sdktrace.SpanExporter) sdktrace.SpanExporter { return twice{e} }

type twice struct{ sdktrace.SpanExporter }

func (t twice) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if err := t.SpanExporter.ExportSpans(ctx, spans); err != nil {
		return err
	}
	return t.SpanExporter.ExportSpans(ctx, spans)
}

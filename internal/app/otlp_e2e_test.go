package app_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/inarious/inarious/internal/app"
	"github.com/inarious/inarious/internal/app/apptest"
	"github.com/inarious/inarious/internal/otlpin/otlpintest"
	"github.com/inarious/inarious/internal/testutil"
)

// serverSpan adds a SERVER span of another API's call to spans.
func serverSpan(spans ptrace.SpanSlice, n int, attrs map[string]any) {
	sp := spans.AppendEmpty()
	sp.SetKind(ptrace.SpanKindServer)
	sp.SetName("call")
	sp.SetTraceID(pcommon.TraceID{byte(n >> 8), byte(n), 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	sp.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, byte(n >> 8), byte(n)})
	end := time.Now()
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(end.Add(-3 * time.Millisecond)))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(end))
	if err := sp.Attributes().FromRaw(attrs); err != nil {
		panic(err)
	}
}

// TestOTLPSpansAreCountedPerClientAndEndpoint: another API's server spans,
// sent as an OTLP exporter sends them (protobuf, gzipped), are counted in
// GET /usage/{client} as calls of this API are; client spans are not, and
// a server span without a method is rejected and counted as such.
func TestOTLPSpansAreCountedPerClientAndEndpoint(t *testing.T) {
	s := &system{apptest.Start(t, nil, func(c *app.Config) { c.OTLPClientAttribute = "enduser.id" })}
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "shop")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	want := map[string]map[string]uint64{"otlp-alice": {}, "198.51.100.77": {}}
	n := 0
	for i := 0; i < 5; i++ {
		n++
		serverSpan(spans, n, map[string]any{"http.request.method": "GET", "http.route": "/orders/{id}", "url.path": fmt.Sprintf("/orders/%d", i),
			"http.response.status_code": 200, "client.address": "198.51.100.77", "enduser.id": "otlp-alice"})
		want["otlp-alice"]["shop: GET /orders/{id}"]++
	}
	for i := 0; i < 3; i++ {
		n++ // the older attribute names, and no enduser.id: counted under the address
		serverSpan(spans, n, map[string]any{"http.method": "POST", "http.target": fmt.Sprintf("/carts/%d/items", 1000+i),
			"http.status_code": 201, "net.peer.ip": "198.51.100.77"})
		want["198.51.100.77"]["shop: POST /carts/{id}/items"]++
	}
	n++
	serverSpan(spans, n, map[string]any{"http.route": "/orders/{id}", "client.address": "198.51.100.77"}) // no method: rejected
	client := spans.AppendEmpty()
	client.SetKind(ptrace.SpanKindClient)
	client.Attributes().PutStr("http.request.method", "GET")

	raw, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	zw := gzip.NewWriter(&body)
	_, _ = zw.Write(raw)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, s.Base+"/v1/traces", &body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	_, _ = out.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-protobuf" {
		t.Fatalf("POST /v1/traces = %d %s: %q", resp.StatusCode, resp.Header.Get("Content-Type"), out.Bytes())
	}
	er := ptraceotlp.NewExportResponse()
	if err := er.UnmarshalProto(out.Bytes()); err != nil {
		t.Fatal(err)
	}
	if got := er.PartialSuccess().RejectedSpans(); got != 1 {
		t.Errorf("rejected spans = %d (%q), want 1", got, er.PartialSuccess().ErrorMessage())
	}
	for client, w := range want {
		testutil.Eventually(t, 30*time.Second, s.counts(t, client, w))
	}
}

// TestOTelSDKServiceIsCountedExactly: a service instrumented with the
// OpenTelemetry Go SDK (otelhttp, the otlptracehttp exporter) sends its
// server spans as it would to any OTLP backend, and its calls are counted
// per client (the attribute the service sets) and endpoint exactly.
func TestOTelSDKServiceIsCountedExactly(t *testing.T) {
	s := &system{apptest.Start(t, nil, func(c *app.Config) { c.OTLPClientAttribute = otlpintest.ClientAttribute })}
	callAndCheck(t, s, otlpintest.Start(t, s.Base, "shop", nil), "sdk-client", 3)
	// Per service: once the service is part of every key (issue 24), also
	// assert that svc.Name's counts are these under ?service=shop.
}

// TestOTelSDKServiceOverGRPC: the same service exporting with the SDK's
// otlptracegrpc exporter to --otlp-grpc-listen is counted exactly, as over
// HTTP.
func TestOTelSDKServiceOverGRPC(t *testing.T) {
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	s := &system{apptest.Start(t, nil, func(c *app.Config) {
		c.OTLPClientAttribute = otlpintest.ClientAttribute
		c.OTLPGRPCListen = addr
	})}
	callAndCheck(t, s, otlpintest.StartGRPC(t, addr, "grpcshop", nil), "grpc-client", 2)
}

// callAndCheck calls every route of svc a few times as each of clients
// clients named prefix-N, flushes its spans, and waits until s counts
// exactly what svc answered.
func callAndCheck(t *testing.T, s *system, svc *otlpintest.Service, prefix string, clients int) {
	t.Helper()
	for c := range clients {
		for i := range 3 + c {
			for _, r := range otlpintest.Routes {
				svc.Call(t, fmt.Sprintf("%s-%d", prefix, c), r, strings.ReplaceAll(r.Pattern, "{id}", fmt.Sprint(i)))
			}
		}
	}
	svc.Flush(t)
	for client, want := range svc.Served() {
		testutil.Eventually(t, 30*time.Second, s.counts(t, client, want))
	}
}

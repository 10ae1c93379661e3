package otlpin_test

import (
	"context"
	"net"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/inarious/inarious/internal/auth"
	"github.com/inarious/inarious/internal/otlpin"
)

// grpcReceiver serves otlpin's gRPC receiver on a loopback port until the
// test ends and returns a client of it.
func grpcReceiver(t *testing.T, pub otlpin.Publisher, opts ...otlpin.Option) ptraceotlp.GRPCClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := otlpin.NewGRPCServer(pub, opts...)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return ptraceotlp.NewGRPCClient(conn)
}

// twoCallsOneInternal is an export of two server spans, one without a
// method (rejected), and an internal span (no API call, skipped).
func twoCallsOneInternal() ptraceotlp.ExportRequest {
	td := ptrace.NewTraces()
	span(td, "shop", ptrace.SpanKindServer, map[string]any{"http.request.method": "GET", "http.route": "/orders/{id}", "http.response.status_code": 200, "client.address": "203.0.113.7"})
	span(td, "shop", ptrace.SpanKindServer, map[string]any{"http.request.method": "POST", "http.route": "/carts", "http.response.status_code": 201, "client.address": "203.0.113.8"})
	span(td, "shop", ptrace.SpanKindServer, map[string]any{"http.route": "/nomethod"})
	span(td, "shop", ptrace.SpanKindInternal, map[string]any{"http.request.method": "GET"})
	return ptraceotlp.NewExportRequestFromTraces(td)
}

func TestGRPCExportCountsServerSpans(t *testing.T) {
	pub := &fakePub{room: 100, healthy: true}
	cl := grpcReceiver(t, pub)
	resp, err := cl.Export(context.Background(), twoCallsOneInternal(), grpc.UseCompressor(gzip.Name))
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.PartialSuccess().RejectedSpans(); got != 1 {
		t.Errorf("rejected spans %d, want 1 (the one without a method)", got)
	}
	if len(pub.events) != 2 || pub.events[0].GetService() != "shop" || pub.events[0].GetRoute() != "/orders/{id}" || pub.events[1].GetHttpMethod() != "POST" {
		t.Errorf("events published: %v", pub.events)
	}
}

// A batch that does not fit is refused whole with a code exporters retry,
// carrying RetryInfo: RESOURCE_EXHAUSTED when only busy, UNAVAILABLE when
// Kafka is away.
func TestGRPCExportRefusedWhole(t *testing.T) {
	for healthy, want := range map[bool]codes.Code{true: codes.ResourceExhausted, false: codes.Unavailable} {
		pub := &fakePub{room: 1, healthy: healthy}
		_, err := grpcReceiver(t, pub).Export(context.Background(), twoCallsOneInternal())
		st := status.Convert(err)
		if st.Code() != want {
			t.Errorf("healthy %v: code %v, want %v (%v)", healthy, st.Code(), want, err)
		}
		var retry *errdetails.RetryInfo
		for _, d := range st.Details() {
			if r, ok := d.(*errdetails.RetryInfo); ok {
				retry = r
			}
		}
		if retry == nil || retry.GetRetryDelay().AsDuration() != otlpin.RetryAfter {
			t.Errorf("healthy %v: retry info %v, want a delay of %v", healthy, retry, otlpin.RetryAfter)
		}
		if len(pub.events) != 0 {
			t.Errorf("healthy %v: %d events of a refused batch published", healthy, len(pub.events))
		}
	}
}

func TestGRPCExportNeedsAnEventsWriteKey(t *testing.T) {
	keys, err := auth.Parse(strings.NewReader("shop:events:write:"+auth.Hash("good")+"\nreader:usage:read:"+auth.Hash("reader")), "test")
	if err != nil {
		t.Fatal(err)
	}
	pub := &fakePub{room: 100, healthy: true}
	cl := grpcReceiver(t, pub, otlpin.WithAPIKeys(keys))
	for _, c := range []struct {
		md   []string
		want codes.Code
	}{
		{nil, codes.Unauthenticated},
		{[]string{"authorization", "Bearer wrong"}, codes.Unauthenticated},
		{[]string{"x-api-key", "reader"}, codes.PermissionDenied},
		{[]string{"authorization", "Bearer good"}, codes.OK},
		{[]string{"x-api-key", "good"}, codes.OK},
	} {
		ctx := metadata.AppendToOutgoingContext(context.Background(), c.md...)
		_, err := cl.Export(ctx, twoCallsOneInternal())
		if got := status.Code(err); got != c.want {
			t.Errorf("metadata %v: %v, want %v", c.md, err, c.want)
		}
	}
	if len(pub.events) != 4 {
		t.Errorf("%d events published, want 4 (2 accepted exports of 2)", len(pub.events))
	}
}

// A message over the limit is refused by gRPC before it is decoded.
func TestGRPCExportTooLarge(t *testing.T) {
	pub := &fakePub{room: 1 << 20, healthy: true}
	cl := grpcReceiver(t, pub, otlpin.WithMaxBodyBytes(1<<10))
	td := ptrace.NewTraces()
	for range 2000 {
		span(td, "shop", ptrace.SpanKindServer, map[string]any{"http.request.method": "GET", "http.route": "/orders/{id}", "client.address": "203.0.113.7"})
	}
	_, err := cl.Export(context.Background(), ptraceotlp.NewExportRequestFromTraces(td))
	if status.Code(err) != codes.ResourceExhausted || len(pub.events) != 0 {
		t.Errorf("oversized export: %v, %d events published; want RESOURCE_EXHAUSTED and none", err, len(pub.events))
	}
}

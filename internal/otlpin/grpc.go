package otlpin

import (
	"context"
	"strings"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // exporters may compress with gzip
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/inarious/inarious/internal/auth"
)

// DefaultGRPCPort is the OTLP/gRPC port exporters send to by default.
const DefaultGRPCPort = 4317

// WithAPIKeys makes the gRPC receiver require a key with the events:write
// scope, sent as the authorization (Bearer) or x-api-key metadata, when
// keys holds any (the HTTP routes are checked by the API's middleware).
func WithAPIKeys(keys *auth.Keys) Option { return func(r *receiver) { r.keys = keys } }

// NewGRPCServer is the OTLP/gRPC traces receiver (TraceService/Export):
// the same conversion, limits and publisher as POST /v1/traces. A message
// may be --max-body-bytes times the inflation ratio once decompressed, as
// a gzipped HTTP body. The caller serves it and stops it (GracefulStop
// lets running exports finish before the publisher is flushed).
func NewGRPCServer(pub Publisher, opts ...Option) *grpc.Server {
	rc := newReceiver(pub, opts)
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(int(rc.maxBody * inflateRatio)))
	ptraceotlp.RegisterGRPCServer(srv, &grpcReceiver{receiver: rc})
	return srv
}

type grpcReceiver struct {
	ptraceotlp.UnimplementedGRPCServer
	*receiver
}

// Export answers as the OTLP spec asks of a gRPC server: partial success
// for spans that are no API calls; RESOURCE_EXHAUSTED with RetryInfo when
// the event queue is full and UNAVAILABLE when Kafka is away, both retried
// by exporters, the batch taken whole or not at all.
func (g *grpcReceiver) Export(ctx context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	resp := ptraceotlp.NewExportResponse()
	if err := g.authorize(ctx); err != nil {
		return resp, err
	}
	select {
	case g.working <- struct{}{}:
	case <-ctx.Done():
		return resp, status.FromContextError(ctx.Err()).Err()
	}
	defer g.endWork()
	res := Convert(req.Traces(), g.clientAttr)
	if len(res.Events) > 0 && !g.pub.PublishAll(res.Events) {
		code := codes.Unavailable
		if g.pub.Healthy() {
			code = codes.ResourceExhausted
		}
		g.log.Warn("otlp batch refused: the event queue has no room", "spans", len(res.Events), "code", code, "transport", "grpc")
		st := status.New(code, "the event queue has no room for this batch; send it again later")
		if detailed, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(RetryAfter)}); err == nil {
			st = detailed
		}
		return resp, st.Err()
	}
	if res.Rejected > 0 {
		resp.PartialSuccess().SetRejectedSpans(res.Rejected)
		resp.PartialSuccess().SetErrorMessage(res.Reason)
	}
	return resp, nil
}

// authorize checks the call's API key as the HTTP middleware does for the
// events:write scope.
func (g *grpcReceiver) authorize(ctx context.Context) error {
	if g.keys.Len() == 0 {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	first := func(name string) string {
		if v := md.Get(name); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	key, present := auth.PresentedKey(first(strings.ToLower(auth.KeyHeader)), first("authorization"))
	if !present {
		return status.Error(codes.Unauthenticated, "an API key is required: send it as "+strings.ToLower(auth.KeyHeader)+" or authorization: Bearer metadata")
	}
	p, ok := g.keys.Lookup(key)
	if !ok {
		return status.Error(codes.Unauthenticated, "the API key is not valid")
	}
	if !p.Has(auth.EventsWrite) {
		return status.Error(codes.PermissionDenied, "the API key lacks the scope "+string(auth.EventsWrite)+" needed here")
	}
	return nil
}

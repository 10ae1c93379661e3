package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/metrics"
	"github.com/inarious/inarious/internal/testutil"
)

// BenchmarkHandlerChain is what the API does per request above net/http:
// router, activity middleware, metrics middleware, auth (off), handler, and
// the publisher's loop with the event's encoding. The CPU budget in
// BENCHMARKS.md ("Cost per request") comes from its profile and from live
// ones; -benchmem shows the allocations per request.
func BenchmarkHandlerChain(b *testing.B) {
	usage := fakeUsage{"127.0.0.1": &activitypb.ClientUsage{
		Total: 3, LastSeen: timestamppb.New(time.Unix(1700000000, 0)),
		Endpoints: map[string]*activitypb.EndpointUsage{"GET /healthz": {Count: 3, LastSeen: timestamppb.New(time.Unix(1700000000, 0))}},
	}}
	for _, path := range []string{"/healthz", "/usage/127.0.0.1"} {
		b.Run(path, func(b *testing.B) {
			pub := api.NewEventPublisher(&testutil.EncodingTransport{}, 1<<16, api.ProduceOnPublish())
			defer func() { _ = pub.Close(context.Background()) }()
			cr, err := api.NewClientResolver(nil)
			if err != nil {
				b.Fatal(err)
			}
			srv, err := newAPI(usage, pub, cr, api.WithMiddleware(metrics.New().Middleware))
			if err != nil {
				b.Fatal(err)
			}
			req := httptest.NewRequest(http.MethodGet, path, nil)
			req.RemoteAddr = "127.0.0.1:40000"
			w := testutil.NewDiscardWriter()
			b.ReportAllocs()
			for b.Loop() {
				srv.ServeHTTP(w, req)
			}
			b.StopTimer()
			if st := pub.Stats(); st.Accepted == 0 || st.Dropped != 0 {
				b.Fatalf("publisher accepted %d, dropped %d", st.Accepted, st.Dropped)
			}
		})
	}
}

package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/metrics"
)

// encodingProducer encodes each event as middleware.KafkaTransport does and
// acknowledges it at once, so a benchmark counts the event's encoding but
// no Kafka client.
type encodingProducer struct{ codec codecs.Activity }

func (e *encodingProducer) Produce(key string, msg any, done func(any, error)) error {
	if _, err := e.codec.Encode(msg); err != nil {
		return err
	}
	done(msg, nil)
	return nil
}

func (e *encodingProducer) Close() error { return nil }

// discardWriter is a ResponseWriter that keeps nothing but its header map,
// reused across requests, so the benchmark measures the handler chain alone.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

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
			pub := api.NewEventPublisher(&encodingProducer{}, 1<<16, api.ProduceOnPublish())
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
			w := &discardWriter{h: http.Header{}}
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

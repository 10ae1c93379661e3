package middleware_test

import (
	"testing"
	"time"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/kafka/kafkatest"
	"github.com/inarious/inarious/internal/stream"
	"github.com/inarious/inarious/middleware"
)

// BenchmarkActivityEmit compares what the API pays per activity event to
// hand it to franz-go: through goka's emitter over FranzProducerBuilder (the
// former path) and through the middleware's KafkaTransport. Both run against the in-process
// broker, whose work is the same for both; at most 4096 events are
// outstanding, as in the buffer.
func BenchmarkActivityEmit(b *testing.B) {
	const topic = string(codecs.ActivityTopic)
	c := kafkatest.Start(b, topic, 4)
	ev := &activitypb.BackendApiActivity{ClientHost: "192.0.2.7", ClientPort: "40000", Endpoint: "/healthz", HttpMethod: "GET",
		HttpStatus: 200, DurationUs: 12, Route: "/healthz", RequestId: "0123456789abcdef", Client: "192.0.2.7"}
	slots := make(chan struct{}, 4096)
	release := func(any, error) { <-slots }
	wait := func() {
		for range cap(slots) {
			slots <- struct{}{}
		}
		for range cap(slots) {
			<-slots
		}
	}
	b.Run("goka-emitter", func(b *testing.B) {
		em, err := goka.NewEmitter(c.Addrs, codecs.ActivityTopic, new(codecs.Activity), goka.WithEmitterHasher(kafka.Hasher),
			goka.WithEmitterProducerBuilder(stream.FranzProducerBuilder(5*time.Millisecond, nil)))
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = em.Finish() }()
		b.ReportAllocs()
		for b.Loop() {
			slots <- struct{}{}
			p, err := em.Emit(codecs.ClientOf(ev), ev)
			if err != nil {
				b.Fatal(err)
			}
			p.Then(func(err error) { release(ev, err) })
		}
		wait()
	})
	b.Run("kafka-transport", func(b *testing.B) {
		em, err := middleware.NewKafkaTransport(c.Addrs, middleware.KafkaLinger(5*time.Millisecond))
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = em.Close() }()
		b.ReportAllocs()
		for b.Loop() {
			slots <- struct{}{}
			if err := em.Produce(codecs.ClientOf(ev), ev, release); err != nil {
				b.Fatal(err)
			}
		}
		wait()
	})
}

package api

import (
	"github.com/lovoo/goka"

	"github.com/inarious/inarious/internal/metrics"
	"github.com/inarious/inarious/middleware"
)

// Emitter is the part of *goka.Emitter NewPublisher uses.
type Emitter interface {
	Emit(key string, msg any) (*goka.Promise, error)
	Finish() error
}

// EventProducer hands events to Kafka, e.g. middleware.KafkaTransport.
type EventProducer = middleware.Transport

// EmitterProducer is an EventProducer over a goka emitter.
func EmitterProducer(em Emitter) EventProducer { return emitterProducer{em} }

type emitterProducer struct{ em Emitter }

func (e emitterProducer) Produce(key string, msg any, done func(any, error)) error {
	prom, err := e.em.Emit(key, msg)
	if err != nil {
		return err
	}
	prom.Then(func(err error) { done(msg, err) })
	return nil
}

func (e emitterProducer) Close() error { return e.em.Finish() }

// Publisher is the API's activity event buffer, the middleware package's
// (its activity middleware fills it, the ingest routes put batches in it),
// with its metrics.
type Publisher struct{ *middleware.Buffer }

// PublisherStats are event counters since start.
type PublisherStats = middleware.Stats

// HoldUntil keeps the publisher's accepted events queued until ready is
// closed, e.g. until the schema registry gave the id every record must be
// framed with.
func HoldUntil(ready <-chan struct{}) Option {
	return func(o *options) { o.holdUntil = ready }
}

// ProduceOnPublish lets Publish hand an event to the producer itself when
// none is waiting and deliveries succeed (middleware.ProduceOnPublish).
func ProduceOnPublish() Option {
	return func(o *options) { o.produceOnPublish = true }
}

// NewPublisher starts a publisher over a goka emitter with room for
// capacity waiting events.
func NewPublisher(em Emitter, capacity int, opts ...Option) *Publisher {
	return NewEventPublisher(EmitterProducer(em), capacity, opts...)
}

// NewEventPublisher starts a publisher over prod with room for capacity
// waiting events. Of opts it takes WithLogger, HoldUntil and
// ProduceOnPublish; the server's options do not concern it.
func NewEventPublisher(prod EventProducer, capacity int, opts ...Option) *Publisher {
	o := newOptions(opts)
	mopts := []middleware.Option{middleware.WithLogger(o.log)}
	if o.holdUntil != nil {
		mopts = append(mopts, middleware.HoldUntil(o.holdUntil))
	}
	if o.produceOnPublish {
		mopts = append(mopts, middleware.ProduceOnPublish())
	}
	return &Publisher{middleware.NewBuffer(prod, capacity, mopts...)}
}

// Counters are the publisher's metrics.
func (p *Publisher) Counters() []metrics.Counter {
	stat := func(f func(middleware.Stats) uint64) func() uint64 { return func() uint64 { return f(p.Stats()) } }
	return []metrics.Counter{
		{Name: "events_accepted_total", Help: "Activity events queued for Kafka.", Value: stat(func(s middleware.Stats) uint64 { return s.Accepted })},
		{Name: "events_emitted_total", Help: "Activity events acknowledged by Kafka.", Value: stat(func(s middleware.Stats) uint64 { return s.Delivered })},
		{Name: "events_failed_total", Help: "Accepted activity events never delivered to Kafka because shutdown came first: still queued, or failed by the producer after shutdown began (failed deliveries before it are retried, not counted).", Value: stat(func(s middleware.Stats) uint64 { return s.Failed })},
		{Name: "events_dropped_total", Help: "Activity events dropped because the queue was full or closed.", Value: stat(func(s middleware.Stats) uint64 { return s.Dropped })},
	}
}

// Gauges are the publisher's metrics that go up and down.
func (p *Publisher) Gauges() []metrics.Gauge {
	return []metrics.Gauge{{Name: "events_queued", Help: "Activity events waiting for the producer.", Value: func() float64 { return float64(p.Stats().Queued) }}}
}

package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/metrics"
)

// Emitter is the part of *goka.Emitter NewPublisher uses.
type Emitter interface {
	Emit(key string, msg any) (*goka.Promise, error)
	Finish() error
}

// EventProducer hands events to Kafka, e.g. stream.FranzEmitter.
type EventProducer interface {
	// Produce encodes msg and hands it to Kafka under key. Unless it
	// returns an error, it calls done exactly once with msg and the
	// outcome of the delivery. done is the same for every event, so the
	// publisher allocates no callback per event.
	Produce(key string, msg any, done func(msg any, err error)) error
	// Close waits for the events handed over, then releases the producer.
	Close() error
}

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

// maxInFlight bounds events handed to the producer and not yet acknowledged,
// so a broker outage cannot grow the producer's buffers without limit.
const maxInFlight = 4096

// Publisher hands activity events to Kafka without making requests wait
// for it. Publish never blocks: a bounded queue absorbs bursts and broker
// outages; an event the producer gives up on goes back into the queue and
// is tried again when the broker returns; what does not fit is dropped and
// counted rather than stalling requests.
type Publisher struct {
	prod EventProducer
	// settleFn is settle as a func value, made once rather than per event.
	settleFn func(msg any, err error)
	log      *slog.Logger
	queue    chan *activitypb.BackendApiActivity
	slots    chan struct{} // in-flight semaphore
	stop     chan struct{}
	done     chan struct{}

	mu      sync.RWMutex // orders Publish against Close
	closed  bool
	pending sync.WaitGroup // accepted events not yet delivered, failed or dropped

	accepted, delivered, failed, dropped, retried atomic.Uint64
	lastFailed                                    atomic.Bool
	// failedAt (unix nanos) paces emitting while deliveries fail, so an
	// unreachable broker does not turn retries into a busy loop.
	failedAt atomic.Int64
	lastErr  atomic.Pointer[string] // of the failure that set lastFailed
	// stalledSince (unix nanos; 0: not stalled) is when the watchdog first
	// saw events waiting with no delivery acknowledged since: the producer
	// holds records up to its delivery timeout (30 s) before it fails them.
	stalledSince atomic.Int64
	stallAfter   time.Duration
	// recoveredAt (unix nanos) is when deliveries last resumed after a
	// logged outage; relapsed is set by a failure soon after it, the
	// producer giving up on a straggler it held from before, which is the
	// same outage and not logged again.
	recoveredAt atomic.Int64
	relapsed    atomic.Bool
	// produceOnPublish: Publish may hand an event to the producer itself.
	produceOnPublish bool
	// holding is set until ready is closed.
	holding atomic.Bool
	// ready, when set, must be closed before anything is emitted.
	ready <-chan struct{}
}

// retryPause is how long the publisher waits after a failed delivery
// before it hands the producer the next event.
const retryPause = 200 * time.Millisecond

// relapseWindow is how soon after deliveries resumed a failed delivery
// still belongs to the outage before: records the producer held from
// before it fail once their delivery timeout passes, just after the broker
// is back.
const relapseWindow = 5 * time.Second

// DefaultStallAfter is how long events may wait with no delivery
// acknowledged before the publisher reports itself unhealthy (StallAfter).
const DefaultStallAfter = 5 * time.Second

// PublisherStats are event counters since start.
type PublisherStats struct {
	Accepted  uint64 `json:"accepted"`  // queued for delivery
	Delivered uint64 `json:"delivered"` // acknowledged by Kafka
	Failed    uint64 `json:"failed"`    // not delivered at shutdown
	Dropped   uint64 `json:"dropped"`   // not queued: the queue was full or closed
	Retried   uint64 `json:"retried"`   // put back after the producer gave up on them
	Queued    int    `json:"queued"`    // waiting now
	InFlight  int    `json:"in_flight"` // with the producer now
}

// HoldUntil keeps the publisher's accepted events queued until ready is
// closed, e.g. until the schema registry gave the id every record must be
// framed with.
func HoldUntil(ready <-chan struct{}) Option {
	return func(o *options) { o.holdUntil = ready }
}

// StallAfter makes the publisher unhealthy (Healthy, /readyz) once events
// waited d with no delivery acknowledged by Kafka, long before the producer
// gives up on them; DefaultStallAfter unless set.
func StallAfter(d time.Duration) Option {
	return func(o *options) { o.stallAfter = d }
}

// ProduceOnPublish lets Publish hand an event to the producer itself when
// none is waiting and deliveries succeed, which spares waking the
// publisher's goroutine for every request. Only for a producer whose Produce
// returns at once while fewer than MaxInFlight events are outstanding, such
// as stream.FranzEmitter.
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
	p := &Publisher{
		prod:             prod,
		log:              o.log,
		ready:            o.holdUntil,
		produceOnPublish: o.produceOnPublish,
		stallAfter:       o.stallAfter,
		queue:            make(chan *activitypb.BackendApiActivity, capacity),
		slots:            make(chan struct{}, maxInFlight),
		stop:             make(chan struct{}),
		done:             make(chan struct{}),
	}
	p.settleFn = p.settle
	if p.stallAfter <= 0 {
		p.stallAfter = DefaultStallAfter
	}
	p.holding.Store(p.ready != nil)
	go p.run()
	go p.watch()
	return p
}

// Publish queues ev, or with ProduceOnPublish may hand it to the producer
// itself, and reports whether it was accepted.
func (p *Publisher) Publish(ev *activitypb.BackendApiActivity) bool {
	here, accepted := p.accept(ev)
	if here {
		// Outside the lock: the producer may settle ev at once, and
		// settling a failure takes the lock again.
		p.produce(ev)
	}
	return accepted
}

// accept takes ev into the queue, or, holding a slot for it, reports that
// Publish is to produce it.
func (p *Publisher) accept(ev *activitypb.BackendApiActivity) (produceHere, accepted bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		p.dropped.Add(1)
		return false, false
	}
	p.pending.Add(1)
	// After a failure the loop paces attempts; events already waiting go first.
	if p.produceOnPublish && !p.holding.Load() && !p.lastFailed.Load() && len(p.queue) == 0 {
		select {
		case p.slots <- struct{}{}:
			p.accepted.Add(1)
			return true, true
		default:
		}
	}
	select {
	case p.queue <- ev:
		p.accepted.Add(1)
		return false, true
	default:
		p.pending.Done()
		p.dropped.Add(1)
		return false, false
	}
}

// PublishAll queues every event of evs or none of them, and reports which:
// a batch refused whole can be retried whole without counting any of it
// twice (an OTLP exporter retries its batch on 429 and 503). Refused
// batches are not counted as dropped: their sender is told and keeps them.
func (p *Publisher) PublishAll(evs []*activitypb.BackendApiActivity) bool {
	// The write lock keeps Publish and retry out, so no event is queued
	// while these are: the room seen here can only grow until they are in.
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || cap(p.queue)-len(p.queue) < len(evs) {
		return false
	}
	for _, ev := range evs {
		p.pending.Add(1)
		p.queue <- ev
		p.accepted.Add(1)
	}
	return true
}

// produce hands ev, whose slot is taken, to the producer.
func (p *Publisher) produce(ev *activitypb.BackendApiActivity) {
	if err := p.prod.Produce(codecs.ClientOf(ev), ev, p.settleFn); err != nil {
		<-p.slots
		p.retry(ev, err)
	}
}

var errStopped = errors.New("publisher stopped")

func (p *Publisher) run() {
	defer close(p.done)
	if p.ready != nil {
		select {
		case <-p.ready:
			p.holding.Store(false)
		case <-p.stop:
			return
		}
	}
	for {
		ev, ok := p.next()
		if !ok {
			return
		}
		// Only after a failed delivery is there a pause to wait out.
		if p.lastFailed.Load() {
			if wait := time.Until(time.Unix(0, p.failedAt.Load()).Add(retryPause)); wait > 0 {
				pause := time.NewTimer(wait)
				select {
				case <-pause.C:
				case <-p.stop:
					pause.Stop()
					p.retry(ev, errStopped)
					return
				}
			}
		}
		if !p.takeSlot() {
			p.retry(ev, errStopped)
			return
		}
		p.produce(ev)
	}
}

// next is the next queued event, or false once stop is closed. The
// non-blocking receives spare a select over both channels while events
// are waiting.
func (p *Publisher) next() (*activitypb.BackendApiActivity, bool) {
	select {
	case <-p.stop:
		return nil, false
	default:
	}
	select {
	case ev := <-p.queue:
		return ev, true
	default:
	}
	select {
	case <-p.stop:
		return nil, false
	case ev := <-p.queue:
		return ev, true
	}
}

// takeSlot takes an in-flight slot, or reports false once stop is closed:
// with the broker down every slot can stay taken, and stop must still end
// the loop, or Close waits for it forever.
func (p *Publisher) takeSlot() bool {
	select {
	case p.slots <- struct{}{}:
		return true
	default:
	}
	select {
	case p.slots <- struct{}{}:
		return true
	case <-p.stop:
		return false
	}
}

// settle frees msg's slot once the producer is done with it.
func (p *Publisher) settle(msg any, err error) {
	<-p.slots
	ev := msg.(*activitypb.BackendApiActivity)
	if err != nil {
		p.retry(ev, err)
		return
	}
	p.delivered.Add(1)
	// Loads first: no write to the shared flags while all is well.
	if p.lastFailed.Load() || p.stalledSince.Load() != 0 {
		p.recovered()
	}
	p.pending.Done()
}

// retry puts ev back after the producer exhausted its own retries, typically
// because the broker is unreachable. At shutdown there is no later: it fails.
func (p *Publisher) retry(ev *activitypb.BackendApiActivity, err error) {
	p.failedAt.Store(time.Now().UnixNano())
	// Held while requeueing, so Close's final drain cannot miss ev.
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		if !p.lastFailed.Swap(true) {
			p.log.Error("activity events not delivered at shutdown", "err", err)
		}
		p.failed.Add(1)
		p.pending.Done()
		return
	}
	if !p.lastFailed.Swap(true) {
		msg := err.Error()
		p.lastErr.Store(&msg)
		if time.Since(time.Unix(0, p.recoveredAt.Load())) < relapseWindow {
			p.relapsed.Store(true)
		} else {
			p.log.Error("activity events not delivered; keeping them for retry", "err", err)
		}
	}
	select {
	case p.queue <- ev:
		p.retried.Add(1)
	default:
		p.dropped.Add(1)
		p.pending.Done()
	}
}

// recovered ends an outage: one line for all of it, as its start was one
// line, not one per event.
func (p *Publisher) recovered() {
	failed := p.lastFailed.Swap(false)
	stalled := p.stalledSince.Swap(0)
	if (failed || stalled != 0) && !p.relapsed.Swap(false) {
		p.recoveredAt.Store(time.Now().UnixNano())
		p.log.Info("activity events delivered again", "retried_total", p.retried.Load(), "queued", len(p.queue))
	}
}

// watch marks the publisher stalled once events waited stallAfter with no
// delivery acknowledged, checking a few times per stallAfter. It costs
// nothing per event and ends with the run loop.
func (p *Publisher) watch() {
	tick := time.NewTicker(min(time.Second, p.stallAfter/4))
	defer tick.Stop()
	var seen uint64     // deliveries at the last check
	var since time.Time // waiting without a delivery since then
	for {
		select {
		case <-p.done:
			return
		case now := <-tick.C:
			d := p.delivered.Load()
			waiting := !p.holding.Load() && (len(p.slots) > 0 || len(p.queue) > 0)
			switch {
			case !waiting || d != seen:
				seen, since = d, time.Time{}
			case since.IsZero():
				since = now
			case now.Sub(since) >= p.stallAfter && p.stalledSince.Load() == 0:
				if p.stalledSince.CompareAndSwap(0, since.UnixNano()) {
					p.relapsed.Store(false) // logged: so is its end
					p.log.Warn("activity events waiting, none acknowledged by Kafka", "for", now.Sub(since).Round(time.Second),
						"in_flight", len(p.slots), "queued", len(p.queue))
				}
			}
		}
	}
}

// Counters are the publisher's metrics.
func (p *Publisher) Counters() []metrics.Counter {
	return []metrics.Counter{
		{Name: "events_accepted_total", Help: "Activity events queued for Kafka.", Value: p.accepted.Load},
		{Name: "events_emitted_total", Help: "Activity events acknowledged by Kafka.", Value: p.delivered.Load},
		{Name: "events_failed_total", Help: "Accepted activity events never delivered to Kafka because shutdown came first: still queued, or failed by the producer after shutdown began (failed deliveries before it are retried, not counted).", Value: p.failed.Load},
		{Name: "events_dropped_total", Help: "Activity events dropped because the queue was full or closed.", Value: p.dropped.Load},
		{Name: "events_retried_total", Help: "Activity events queued again after the producer gave up on their delivery (broker unreachable past the delivery timeout); each is delivered later or counted as failed at shutdown.", Value: p.retried.Load},
	}
}

// Gauges are the publisher's metrics that go up and down.
func (p *Publisher) Gauges() []metrics.Gauge {
	return []metrics.Gauge{{Name: "events_queued", Help: "Activity events waiting for the producer.", Value: func() float64 { return float64(len(p.queue)) }}}
}

// Healthy is false while the last delivery attempt failed, or events have
// waited StallAfter with no delivery acknowledged.
func (p *Publisher) Healthy() bool { return !p.lastFailed.Load() && p.stalledSince.Load() == 0 }

// Degraded says why the publisher is not Healthy, "" when it is.
func (p *Publisher) Degraded() string {
	waiting := fmt.Sprintf("%d events with the producer, %d queued", len(p.slots), len(p.queue))
	if p.lastFailed.Load() {
		why := "unknown error"
		if e := p.lastErr.Load(); e != nil {
			why = *e
		}
		return fmt.Sprintf("activity events: the producer gave up delivering (%s); kept for retry (%d retried so far), %s", why, p.retried.Load(), waiting)
	}
	if since := p.stalledSince.Load(); since != 0 {
		return fmt.Sprintf("activity events: none acknowledged by Kafka for %s, %s", time.Since(time.Unix(0, since)).Round(time.Second), waiting)
	}
	return ""
}

// Stats returns the counters.
func (p *Publisher) Stats() PublisherStats {
	return PublisherStats{
		Accepted:  p.accepted.Load(),
		Delivered: p.delivered.Load(),
		Failed:    p.failed.Load(),
		Dropped:   p.dropped.Load(),
		Retried:   p.retried.Load(),
		Queued:    len(p.queue),
		InFlight:  len(p.slots),
	}
}

// Close stops accepting events and waits until every accepted one is
// acknowledged by Kafka (or has failed), or ctx ends. Events still queued
// then count as failed; events with the producer are settled when it gives
// up on them, possibly after Close returned, as is the producer's shutdown.
func (p *Publisher) Close(ctx context.Context) error {
	p.mu.Lock()
	already := p.closed
	p.closed = true
	p.mu.Unlock()
	if already {
		<-p.done
		return nil
	}
	drained := make(chan struct{})
	go func() {
		p.pending.Wait()
		close(drained)
	}()
	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		err = errors.Join(errors.New("publisher: events still undelivered at shutdown"), ctx.Err())
	}
	close(p.stop)
	<-p.done
	for n := len(p.queue); n > 0; n-- {
		<-p.queue
		p.failed.Add(1)
		p.pending.Done()
	}
	// The producer's Close waits for its in-flight messages, which with
	// the broker down takes its whole retry budget.
	finished := make(chan error, 1)
	go func() { finished <- p.prod.Close() }()
	select {
	case ferr := <-finished:
		return errors.Join(err, ferr)
	case <-ctx.Done():
		select {
		case ferr := <-finished: // both ready: it did finish
			return errors.Join(err, ferr)
		default:
		}
		return errors.Join(err, errors.New("publisher: producer still shutting down"), ctx.Err())
	}
}

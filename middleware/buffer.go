package middleware

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
)

// Transport delivers events, e.g. NewKafkaTransport or NewHTTPTransport.
type Transport interface {
	// Produce takes msg, a *activitypb.BackendApiActivity, for delivery
	// under key, the client it is counted under. Unless it returns an
	// error, it calls done exactly once with msg and the outcome. done is
	// the same for every event, so the buffer allocates no callback per
	// event. An outcome wrapping ErrRejected is final: the event is not
	// tried again.
	Produce(key string, msg any, done func(msg any, err error)) error
	// Close waits for the events handed over, then releases the transport.
	Close() error
}

// ErrRejected marks an event its destination refused for good (a malformed
// event, a missing permission): trying again would only be refused again.
var ErrRejected = errors.New("event rejected")

// MaxInFlight bounds events handed to the transport and not yet settled,
// so an outage cannot grow the transport's buffers without limit.
const MaxInFlight = 4096

// DefaultBufferSize is how many events wait at most when New is not told.
const DefaultBufferSize = 8192

// retryPause is how long the buffer waits after a failed delivery before
// it hands the transport the next event.
const retryPause = 200 * time.Millisecond

// dropBurstGap is how long a burst of drops must pause before the next
// drop is logged again: one warning per burst, not per event.
const dropBurstGap = 10 * time.Second

// Buffer hands activity events to a Transport without making requests wait
// for it. Publish never blocks: a bounded queue absorbs bursts and outages;
// an event the transport gives up on goes back into the queue and is tried
// again later; what does not fit is dropped and counted rather than
// stalling requests.
type Buffer struct {
	prod Transport
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

	accepted, delivered, failed, dropped, retried, rejected atomic.Uint64
	lastFailed                                              atomic.Bool
	// failedAt (unix nanos) paces producing while deliveries fail, so an
	// unreachable destination does not turn retries into a busy loop.
	failedAt atomic.Int64
	// lastDrop (unix nanos) tells a new burst of drops from a running one.
	lastDrop atomic.Int64
	// produceOnPublish: Publish may hand an event to the transport itself.
	produceOnPublish bool
	// holding is set until ready is closed.
	holding atomic.Bool
	// ready, when set, must be closed before anything is produced.
	ready <-chan struct{}
}

// Stats are a buffer's event counters since it started.
type Stats struct {
	Accepted  uint64 `json:"accepted"`  // queued for delivery
	Delivered uint64 `json:"delivered"` // acknowledged by the destination
	Failed    uint64 `json:"failed"`    // not delivered at shutdown
	Dropped   uint64 `json:"dropped"`   // not queued: the queue was full or closed
	Retried   uint64 `json:"retried"`   // put back after the transport gave up on them
	Rejected  uint64 `json:"rejected"`  // refused for good by the destination (ErrRejected)
	Queued    int    `json:"queued"`    // waiting now
	InFlight  int    `json:"in_flight"` // with the transport now
}

// NewBuffer starts a buffer over t with room for capacity waiting events.
// Of opts it takes WithLogger, HoldUntil and ProduceOnPublish.
func NewBuffer(t Transport, capacity int, opts ...Option) *Buffer {
	return newBuffer(t, capacity, newConfig(opts))
}

func newBuffer(t Transport, capacity int, c config) *Buffer {
	b := &Buffer{
		prod:             t,
		log:              c.log,
		ready:            c.holdUntil,
		produceOnPublish: c.produceOnPublish,
		queue:            make(chan *activitypb.BackendApiActivity, capacity),
		slots:            make(chan struct{}, MaxInFlight),
		stop:             make(chan struct{}),
		done:             make(chan struct{}),
	}
	b.settleFn = b.settle
	b.holding.Store(b.ready != nil)
	go b.run()
	return b
}

// Publish queues ev, or with ProduceOnPublish may hand it to the transport
// itself, and reports whether it was accepted. It never blocks.
func (b *Buffer) Publish(ev *activitypb.BackendApiActivity) bool {
	here, accepted := b.accept(ev)
	if here {
		// Outside the lock: the transport may settle ev at once, and
		// settling a failure takes the lock again.
		b.produce(ev)
	}
	return accepted
}

// accept takes ev into the queue, or, holding a slot for it, reports that
// Publish is to produce it.
func (b *Buffer) accept(ev *activitypb.BackendApiActivity) (produceHere, accepted bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		b.drop()
		return false, false
	}
	b.pending.Add(1)
	// After a failure the loop paces attempts; events already waiting go first.
	if b.produceOnPublish && !b.holding.Load() && !b.lastFailed.Load() && len(b.queue) == 0 {
		select {
		case b.slots <- struct{}{}:
			b.accepted.Add(1)
			return true, true
		default:
		}
	}
	select {
	case b.queue <- ev:
		b.accepted.Add(1)
		return false, true
	default:
		b.pending.Done()
		b.drop()
		return false, false
	}
}

// drop counts an event that found no room, and warns at the first drop
// of a burst: a full buffer drops many, and a log line each would add to
// the overload.
func (b *Buffer) drop() {
	n := b.dropped.Add(1)
	now := time.Now().UnixNano()
	if prev := b.lastDrop.Swap(now); now-prev > int64(dropBurstGap) {
		b.log.Warn("activity events dropped: the buffer is full or closed (one warning per burst of drops)",
			"dropped_total", n, "capacity", cap(b.queue))
	}
}

// PublishAll queues every event of evs or none of them, and reports which:
// a batch refused whole can be retried whole without counting any of it
// twice (an OTLP exporter retries its batch on 429 and 503). Refused
// batches are not counted as dropped: their sender is told and keeps them.
// With ProduceOnPublish, the events that find a free in-flight slot are
// handed to the transport here, by the caller: the buffer's one goroutine
// would otherwise be left behind by the requests decoding batches, as the
// scheduler gives each goroutine an even share.
func (b *Buffer) PublishAll(evs []*activitypb.BackendApiActivity) bool {
	here, ok := b.acceptAll(evs)
	for _, ev := range evs[:here] {
		b.produce(ev)
	}
	return ok
}

// acceptAll takes evs whole or not at all: the first here of them hold an
// in-flight slot each, for PublishAll to produce, the rest are queued.
func (b *Buffer) acceptAll(evs []*activitypb.BackendApiActivity) (here int, ok bool) {
	// The write lock keeps Publish and retry out, so no event is queued
	// while these are: the room seen here can only grow until they are in.
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, false
	}
	if b.produceOnPublish && !b.holding.Load() && !b.lastFailed.Load() && len(b.queue) == 0 {
	slots:
		for here < len(evs) {
			select {
			case b.slots <- struct{}{}:
				here++
			default:
				break slots
			}
		}
	}
	if cap(b.queue)-len(b.queue) < len(evs)-here {
		for range here {
			<-b.slots
		}
		return 0, false
	}
	for _, ev := range evs[here:] {
		b.pending.Add(1)
		b.queue <- ev
		b.accepted.Add(1)
	}
	b.pending.Add(here)
	b.accepted.Add(uint64(here))
	return here, true
}

// produce hands ev, whose slot is taken, to the transport.
func (b *Buffer) produce(ev *activitypb.BackendApiActivity) {
	if err := b.prod.Produce(codecs.ClientOf(ev), ev, b.settleFn); err != nil {
		<-b.slots
		b.retry(ev, err)
	}
}

var errStopped = errors.New("buffer stopped")

func (b *Buffer) run() {
	defer close(b.done)
	if b.ready != nil {
		select {
		case <-b.ready:
			b.holding.Store(false)
		case <-b.stop:
			return
		}
	}
	for {
		ev, ok := b.next()
		if !ok {
			return
		}
		// Only after a failed delivery is there a pause to wait out.
		if b.lastFailed.Load() {
			if wait := time.Until(time.Unix(0, b.failedAt.Load()).Add(retryPause)); wait > 0 {
				pause := time.NewTimer(wait)
				select {
				case <-pause.C:
				case <-b.stop:
					pause.Stop()
					b.retry(ev, errStopped)
					return
				}
			}
		}
		if !b.takeSlot() {
			b.retry(ev, errStopped)
			return
		}
		b.produce(ev)
	}
}

// next is the next queued event, or false once stop is closed. The
// non-blocking receives spare a select over both channels while events
// are waiting.
func (b *Buffer) next() (*activitypb.BackendApiActivity, bool) {
	select {
	case <-b.stop:
		return nil, false
	default:
	}
	select {
	case ev := <-b.queue:
		return ev, true
	default:
	}
	select {
	case <-b.stop:
		return nil, false
	case ev := <-b.queue:
		return ev, true
	}
}

// takeSlot takes an in-flight slot, or reports false once stop is closed:
// with the destination down every slot can stay taken, and stop must still
// end the loop, or Close waits for it forever.
func (b *Buffer) takeSlot() bool {
	select {
	case b.slots <- struct{}{}:
		return true
	default:
	}
	select {
	case b.slots <- struct{}{}:
		return true
	case <-b.stop:
		return false
	}
}

// settle frees msg's slot once the transport is done with it.
func (b *Buffer) settle(msg any, err error) {
	<-b.slots
	ev := msg.(*activitypb.BackendApiActivity)
	if err != nil {
		if errors.Is(err, ErrRejected) {
			b.rejected.Add(1)
			b.pending.Done()
			return
		}
		b.retry(ev, err)
		return
	}
	b.delivered.Add(1)
	// A load first: no write to the shared flag while all is well.
	if b.lastFailed.Load() {
		b.lastFailed.Store(false)
	}
	b.pending.Done()
}

// retry puts ev back after the transport exhausted its own retries,
// typically because the destination is unreachable. At shutdown there is
// no later: it fails.
func (b *Buffer) retry(ev *activitypb.BackendApiActivity, err error) {
	b.failedAt.Store(time.Now().UnixNano())
	// Held while requeueing, so Close's final drain cannot miss ev.
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		if !b.lastFailed.Swap(true) {
			b.log.Error("activity events not delivered at shutdown", "err", err)
		}
		b.failed.Add(1)
		b.pending.Done()
		return
	}
	if !b.lastFailed.Swap(true) {
		b.log.Error("activity events not delivered; keeping them for retry", "err", err)
	}
	select {
	case b.queue <- ev:
		b.retried.Add(1)
	default:
		b.pending.Done()
		b.drop()
	}
}

// Healthy is false while the last delivery attempt failed.
func (b *Buffer) Healthy() bool { return !b.lastFailed.Load() }

// Stats returns the counters.
func (b *Buffer) Stats() Stats {
	return Stats{
		Accepted:  b.accepted.Load(),
		Delivered: b.delivered.Load(),
		Failed:    b.failed.Load(),
		Dropped:   b.dropped.Load(),
		Retried:   b.retried.Load(),
		Rejected:  b.rejected.Load(),
		Queued:    len(b.queue),
		InFlight:  len(b.slots),
	}
}

// Close stops accepting events and waits until every accepted one is
// delivered (or has failed), or ctx ends. Events still queued then count
// as failed; events with the transport are settled when it gives up on
// them, possibly after Close returned, as is the transport's shutdown.
func (b *Buffer) Close(ctx context.Context) error {
	b.mu.Lock()
	already := b.closed
	b.closed = true
	b.mu.Unlock()
	if already {
		<-b.done
		return nil
	}
	drained := make(chan struct{})
	go func() {
		b.pending.Wait()
		close(drained)
	}()
	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		err = errors.Join(errors.New("activity events still undelivered at shutdown"), ctx.Err())
	}
	close(b.stop)
	<-b.done
	for n := len(b.queue); n > 0; n-- {
		<-b.queue
		b.failed.Add(1)
		b.pending.Done()
	}
	// The transport's Close waits for its in-flight events, which with
	// the destination down takes its whole retry budget.
	finished := make(chan error, 1)
	go func() { finished <- b.prod.Close() }()
	select {
	case ferr := <-finished:
		return errors.Join(err, ferr)
	case <-ctx.Done():
		select {
		case ferr := <-finished: // both ready: it did finish
			return errors.Join(err, ferr)
		default:
		}
		return errors.Join(err, errors.New("activity transport still shutting down"), ctx.Err())
	}
}

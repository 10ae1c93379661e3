package api

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/processors"
)

// Emitter is the part of *goka.Emitter the publisher uses.
type Emitter interface {
	Emit(key string, msg any) (*goka.Promise, error)
	Finish() error
}

// Publisher hands activity events to Kafka off the request path: Publish
// never blocks; a bounded queue absorbs bursts and broker hiccups, and what
// does not fit is dropped and counted rather than stalling requests.
type Publisher struct {
	em    Emitter
	log   *slog.Logger
	queue chan *activitypb.BackendApiActivity
	done  chan struct{}

	closeOnce sync.Once
	mu        sync.RWMutex // guards closed against Publish racing Close
	closed    bool

	accepted, delivered, failed, dropped atomic.Uint64
	lastFailed                           atomic.Bool
}

// PublisherStats are event counters since start.
type PublisherStats struct {
	Accepted  uint64 // queued for delivery
	Delivered uint64 // acknowledged by Kafka
	Failed    uint64 // given up by the producer after its retries
	Dropped   uint64 // not queued because the queue was full or closed
	Queued    int    // waiting now
}

// NewPublisher starts a publisher with room for capacity waiting events.
func NewPublisher(em Emitter, capacity int, log *slog.Logger) *Publisher {
	if log == nil {
		log = slog.Default()
	}
	p := &Publisher{
		em:    em,
		log:   log,
		queue: make(chan *activitypb.BackendApiActivity, capacity),
		done:  make(chan struct{}),
	}
	go p.run()
	return p
}

// Publish queues ev and reports whether it was accepted.
func (p *Publisher) Publish(ev *activitypb.BackendApiActivity) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		p.dropped.Add(1)
		return false
	}
	select {
	case p.queue <- ev:
		p.accepted.Add(1)
		return true
	default:
		p.dropped.Add(1)
		return false
	}
}

func (p *Publisher) run() {
	defer close(p.done)
	for ev := range p.queue {
		prom, err := p.em.Emit(processors.ClientOf(ev), ev)
		if err != nil {
			p.fail(err)
			continue
		}
		prom.Then(func(err error) {
			if err != nil {
				p.fail(err)
				return
			}
			p.delivered.Add(1)
			p.lastFailed.Store(false)
		})
	}
}

func (p *Publisher) fail(err error) {
	p.failed.Add(1)
	if !p.lastFailed.Swap(true) {
		p.log.Error("activity event not delivered", "err", err)
	}
}

// Healthy is false while the last delivery attempt failed.
func (p *Publisher) Healthy() bool { return !p.lastFailed.Load() }

// Stats returns the counters.
func (p *Publisher) Stats() PublisherStats {
	return PublisherStats{
		Accepted:  p.accepted.Load(),
		Delivered: p.delivered.Load(),
		Failed:    p.failed.Load(),
		Dropped:   p.dropped.Load(),
		Queued:    len(p.queue),
	}
}

// Close stops accepting events, hands every queued one to the emitter and
// waits until Kafka has acknowledged them or ctx ends.
func (p *Publisher) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		close(p.queue)
		p.mu.Unlock()
	})
	finished := make(chan error, 1)
	go func() {
		<-p.done
		finished <- p.em.Finish()
	}()
	select {
	case err := <-finished:
		return err
	case <-ctx.Done():
		return errors.Join(errors.New("publisher: events still in flight at shutdown"), ctx.Err())
	}
}

package stream

import (
	"errors"
	"hash"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// ErrProducerClosed finishes promises of records emitted after Close.
var ErrProducerClosed = errors.New("stream: producer closed")

// CoalesceOptions bound how long and how many changelog records are held.
type CoalesceOptions struct {
	// Window is the longest a record waits for a newer value of its key.
	Window time.Duration
	// MaxKeys flushes early once this many distinct keys are held.
	MaxKeys int
}

// DefaultCoalesceOptions hold a record at most 2 ms, as long as the
// producers' own batching, and at most 4096 keys.
func DefaultCoalesceOptions() CoalesceOptions {
	return CoalesceOptions{Window: 2 * time.Millisecond, MaxKeys: 4096}
}

// Coalescer is a goka.Producer that, for one topic (a group's changelog),
// keeps only the last value emitted per key within a short window and sends
// only that record to the underlying producer; every promise of a replaced
// record finishes with the surviving record's result. The table's values are
// absolute, so the changelog ends in the same state, and since goka commits
// an input offset only after its emits' promises finished, nothing is
// committed before the value that contains it is acknowledged.
//
// Records of other topics go straight to the underlying producer, in the
// order they were emitted. The underlying producer must keep the order of
// records of one partition (idempotent): a key's values of consecutive
// windows are handed to it in order.
type Coalescer struct {
	next  goka.Producer
	topic string
	opts  CoalesceOptions

	mu      sync.Mutex
	pending *batch
	armed   bool // a flush timer is running for pending
	closed  bool

	// flushMu serialises flushes, so a key's values reach next in order.
	flushMu sync.Mutex
	spare   *batch
}

// batch holds the surviving records of one window in first-emitted order,
// so a flush is deterministic.
type batch struct {
	index   map[string]int
	records []held
}

type held struct {
	key       string
	value     []byte
	headers   goka.Headers
	finishers []goka.PromiseFinisher
}

func newBatch(n int) *batch { return &batch{index: make(map[string]int, n)} }

func (b *batch) reset() {
	clear(b.index)
	clear(b.records) // drop references to values and finishers
	b.records = b.records[:0]
}

// NewCoalescer coalesces the records of topic emitted through next.
func NewCoalescer(next goka.Producer, topic string, opts CoalesceOptions) *Coalescer {
	def := DefaultCoalesceOptions()
	if opts.Window <= 0 {
		opts.Window = def.Window
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = def.MaxKeys
	}
	return &Coalescer{next: next, topic: topic, opts: opts, pending: newBatch(opts.MaxKeys), spare: newBatch(opts.MaxKeys)}
}

// CoalescingBuilder wraps the producers build builds in a Coalescer of topic.
func CoalescingBuilder(build goka.ProducerBuilder, topic string, opts CoalesceOptions) goka.ProducerBuilder {
	return func(brokers []string, clientID string, hasher func() hash.Hash32) (goka.Producer, error) {
		p, err := build(brokers, clientID, hasher)
		if err != nil {
			return nil, err
		}
		return NewCoalescer(p, topic, opts), nil
	}
}

// Emit implements goka.Producer.
func (c *Coalescer) Emit(topic, key string, value []byte) *goka.Promise {
	return c.EmitWithHeaders(topic, key, value, nil)
}

// EmitWithHeaders implements goka.Producer.
func (c *Coalescer) EmitWithHeaders(topic, key string, value []byte, headers goka.Headers) *goka.Promise {
	if topic != c.topic {
		return c.next.EmitWithHeaders(topic, key, value, headers)
	}
	promise, finish := goka.NewPromiseWithFinisher()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return finish(nil, ErrProducerClosed)
	}
	b := c.pending
	if i, ok := b.index[key]; ok {
		r := &b.records[i]
		r.value, r.headers = value, headers
		r.finishers = append(r.finishers, finish)
	} else {
		b.index[key] = len(b.records)
		b.records = append(b.records, held{key: key, value: value, headers: headers, finishers: []goka.PromiseFinisher{finish}})
	}
	full := len(b.records) >= c.opts.MaxKeys
	if !full && !c.armed {
		c.armed = true
		time.AfterFunc(c.opts.Window, c.Flush)
	}
	c.mu.Unlock()
	if full {
		// In the emitter's goroutine: back-pressure when next is slow.
		c.Flush()
	}
	return promise
}

// Flush hands the held records to the underlying producer now.
func (c *Coalescer) Flush() {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	c.mu.Lock()
	b := c.pending
	c.pending, c.spare = c.spare, nil
	c.armed = false
	c.mu.Unlock()
	for i := range b.records {
		r := &b.records[i]
		finishers := r.finishers
		c.next.EmitWithHeaders(c.topic, r.key, r.value, r.headers).ThenWithMessage(func(msg *sarama.ProducerMessage, err error) {
			for _, f := range finishers {
				f(msg, err)
			}
		})
	}
	b.reset()
	c.spare = b
}

// Close flushes what is held, then closes the underlying producer, which
// waits for the outstanding acknowledgements. Later emits to the topic fail.
func (c *Coalescer) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.Flush()
	return c.next.Close()
}

package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
)

// TableCacheOptions bound how long and how many updated rows a partition of
// a TableCache holds before it writes them.
type TableCacheOptions struct {
	// Interval is the longest a partition holds updated rows while updates
	// keep coming (a little more: the writer checks every Idle), so also
	// how far local storage and the changelog (views, a worker's query
	// endpoints) lag behind the callbacks under load.
	Interval time.Duration
	// Idle writes a partition's rows once it got no update for this long:
	// at low rates an update is written about Idle after it, so reads stay
	// fresh; under load, when updates keep coming, Interval applies.
	Idle time.Duration
	// MaxRows writes a partition's rows early once this many are held.
	MaxRows int
}

// DefaultTableCacheOptions hold a row at most about 50 ms, write a quiet
// partition's after 1 ms, and hold at most 4096 rows per partition.
func DefaultTableCacheOptions() TableCacheOptions {
	return TableCacheOptions{Interval: 50 * time.Millisecond, Idle: time.Millisecond, MaxRows: 4096}
}

// ErrNoProducer fails the writes of a partition whose producer or storage is gone.
var ErrNoProducer = errors.New("stream: table cache has no producer or storage")

// TableCache is Kafka Streams' record cache for a goka group table: a
// callback updates a row in memory (CachedPartition.Set) instead of calling
// ctx.SetValue, and when the partition goes quiet for Idle, has held rows
// for Interval or holds MaxRows, its updated rows are encoded once and
// written to local storage and to the changelog, however many events
// changed them. A skewed stream, where a few keys take most
// events, then costs one encoding and one changelog record per key and
// interval instead of one per event.
//
// Exactness is kept by deferring commits (goka's ctx.DeferCommit): an input
// message is committed only after the changelog acknowledged every record
// of the write that contains its update. All rows of a partition go to the
// same changelog partition, in order, so the write's last acknowledgement
// covers the whole write. A crash loses the cached rows and the uncommitted
// input with them; goka reads that input again.
//
// The cache writes only when the processor's producer (UseProducer) and the
// partition's storage (WrapStorage) are bound, as stream.NewProcessor does;
// otherwise (goka's tester) Set writes through ctx.SetValue at once.
type TableCache struct {
	topic string // changelog
	codec goka.Codec
	opts  TableCacheOptions
	log   *slog.Logger

	producer atomic.Pointer[goka.Producer]
	parts    sync.Map     // int32 -> *CachedPartition
	inFlight atomic.Int64 // records written and not yet acknowledged
	fence    atomic.Pointer[Fence]
}

// SetFence makes every write ask fence first (nil: none): while it fails, rows are held
// (and their input stays uncommitted), and a partition closed meanwhile
// drops them with their commits failed, so the input is read again by its
// next owner. A member that stalled past its session timeout (SIGSTOP, a
// paused VM) still runs its old generation for a moment when it resumes;
// without a fence its held or newly updated rows, computed from its stale
// state, would reach the changelog after the new owner's, overwrite them,
// and move its local recovery offset past them (ownership.Lease).
func (c *TableCache) SetFence(fence *Fence) { c.fence.Store(fence) }

func (c *TableCache) fenceErr() error { return c.fence.Load().Err() }

// NewTableCache caches the rows of group's table, encoded with codec,
// within limits; of opts it heeds WithLogger.
func NewTableCache(group goka.Group, codec goka.Codec, limits TableCacheOptions, opts ...Option) *TableCache {
	def := DefaultTableCacheOptions()
	if limits.Interval <= 0 {
		limits.Interval = def.Interval
	}
	if limits.MaxRows <= 0 {
		limits.MaxRows = def.MaxRows
	}
	if limits.Idle <= 0 {
		limits.Idle = def.Idle
	}
	limits.Idle = min(limits.Idle, limits.Interval)
	return &TableCache{topic: string(goka.GroupTable(group)), codec: codec, opts: limits, log: settingsOf(opts).log}
}

// UseProducer binds the producer of the processor the cache serves
// (ProducerUser): the one goka writes the table with, so the cache's
// records and goka's own (a Delete's tombstone) stay in order.
func (c *TableCache) UseProducer(p goka.Producer) { c.producer.Store(&p) }

func (c *TableCache) currentProducer() goka.Producer {
	if p := c.producer.Load(); p != nil {
		return *p
	}
	return nil
}

// WrapStorage binds each partition's table storage to the cache for as long
// as goka keeps it open. b must build what goka itself writes to.
func (c *TableCache) WrapStorage(b storage.Builder) storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		st, err := b(topic, partition)
		if err != nil || topic != c.topic {
			return st, err
		}
		cp := c.partition(partition)
		cp.mu.Lock()
		cp.store = st
		cp.mu.Unlock()
		return &cachedStorage{Storage: st, cp: cp}, nil
	}
}

// cachedStorage unbinds its partition when goka closes it.
type cachedStorage struct {
	storage.Storage
	cp *CachedPartition
}

func (s *cachedStorage) Close() error {
	s.cp.unbind(s.Storage)
	return s.Storage.Close()
}

func (c *TableCache) partition(p int32) *CachedPartition {
	if cp, ok := c.parts.Load(p); ok {
		return cp.(*CachedPartition)
	}
	cp, _ := c.parts.LoadOrStore(p, &CachedPartition{c: c, id: p, rows: map[string]any{}, updated: make(chan struct{}, 1)})
	return cp.(*CachedPartition)
}

// Unwritten is how many updated rows are held or written but not yet
// acknowledged by the changelog.
func (c *TableCache) Unwritten() int {
	n := int(c.inFlight.Load())
	c.parts.Range(func(_, v any) bool {
		cp := v.(*CachedPartition)
		cp.mu.Lock()
		n += len(cp.rows)
		cp.mu.Unlock()
		return true
	})
	return n
}

// Lock locks and returns the cached partition of ctx's message. The first
// call of each partition processor starts the partition's writer: it writes
// the rows once they waited about the interval, and when the processor
// stops (goka waits for the deferred commits before it closes the storage,
// so a rebalance or shutdown loses nothing).
func (c *TableCache) Lock(ctx goka.Context) *CachedPartition {
	cp := c.partition(ctx.Partition())
	cp.mu.Lock()
	if run := ctx.Context(); cp.run != run && cp.bound() {
		cp.run = run
		go cp.writer(run)
	}
	return cp
}

func (cp *CachedPartition) writer(run context.Context) {
	for {
		select {
		case <-run.Done():
			cp.flush(true)
			return
		case <-cp.updated:
		}
		if !cp.writeWhenDue(run) {
			return
		}
	}
}

// writeWhenDue checks every Idle until the held rows are written, by
// itself once they are due or by another write; false once run ended.
func (cp *CachedPartition) writeWhenDue(run context.Context) bool {
	t := time.NewTicker(cp.c.opts.Idle)
	defer t.Stop()
	for {
		select {
		case <-run.Done():
			cp.flush(true)
			return false
		case now := <-t.C:
			cp.mu.Lock()
			held := len(cp.rows) > 0
			due := held && (now.Sub(cp.last) >= cp.c.opts.Idle || now.Sub(cp.since) >= cp.c.opts.Interval)
			cp.mu.Unlock()
			if due && !cp.flush(false) {
				continue // fenced: still held, try again
			}
			if !held || due {
				return true
			}
		}
	}
}

// CachedPartition holds the updated rows of one table partition. Hold its
// lock (TableCache.Lock) while reading or changing a row handed to Set: a
// write encodes the rows under the same lock, from another goroutine.
type CachedPartition struct {
	c  *TableCache
	id int32

	mu      sync.Mutex
	store   storage.Storage // nil while goka has no storage open
	run     context.Context // of the partition processor last seen
	rows    map[string]any  // updated since the last write
	order   []string        // rows' keys in first-update order
	commits []func(error)   // deferred commits of the messages in rows
	since   time.Time       // first update since the last write
	last    time.Time       // latest update
	updated chan struct{}   // wakes the writer when rows are held again
}

// bound is whether the partition can write: storage open, producer known.
func (cp *CachedPartition) bound() bool { return cp.store != nil && cp.c.producer.Load() != nil }

// Unlock unlocks the partition's rows.
func (cp *CachedPartition) Unlock() { cp.mu.Unlock() }

// Get returns key's row updated since the last write. Call with the lock held.
func (cp *CachedPartition) Get(key string) (any, bool) {
	v, ok := cp.rows[key]
	return v, ok
}

// Set makes value ctx's key's row, to be written with the partition's next
// write, and holds back the commit of ctx's message until then. Call with
// the lock held, and change value afterwards only under the lock. Set
// reports whether MaxRows are held: then Flush, after unlocking.
func (cp *CachedPartition) Set(ctx goka.Context, value any) (full bool) {
	if !cp.bound() {
		ctx.SetValue(value)
		return false
	}
	key := ctx.Key()
	cp.last = time.Now()
	if _, ok := cp.rows[key]; !ok {
		cp.order = append(cp.order, key)
		if len(cp.order) == 1 {
			cp.since = cp.last
			select {
			case cp.updated <- struct{}{}:
			default: // the writer is awake already
			}
		}
	}
	cp.rows[key] = value
	cp.commits = append(cp.commits, ctx.DeferCommit())
	return len(cp.rows) >= cp.c.opts.MaxRows
}

// Flush writes the partition's updated rows now: each encoded once, to
// local storage, then to the changelog. The deferred commits finish when
// the changelog acknowledged all of them, with the first error if any
// failed (goka then stops the processor, which is rebuilt and reads the
// uncommitted input again).
func (cp *CachedPartition) Flush() { cp.flush(false) }

// flush is Flush; while the fence fails it holds the rows, or drops them
// with their commits failed when final (the partition's run ended). It
// reports false when it held rows back.
func (cp *CachedPartition) flush(final bool) bool {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if len(cp.rows) == 0 {
		return true
	}
	if err := cp.c.fenceErr(); err != nil {
		if !final {
			return false
		}
		cp.c.log.Warn("table cache: partition closed with rows unwritten while fenced; their input is read again", "partition", cp.id, "rows", len(cp.rows))
		for _, f := range cp.commits {
			f(fmt.Errorf("stream: table write fenced: %w", err))
		}
		clear(cp.rows)
		cp.order = cp.order[:0]
		cp.commits = nil
		cp.since = time.Time{}
		return true
	}
	w := &tableWrite{c: cp.c, commits: cp.commits, pending: len(cp.order), store: cp.store, inFlight: &cp.c.inFlight}
	w.inFlight.Add(int64(w.pending))
	producer := cp.c.currentProducer()
	for _, key := range cp.order {
		err := cp.write(producer, key, cp.rows[key], w)
		if err != nil {
			w.done(nil, err)
		}
	}
	clear(cp.rows)
	cp.order = cp.order[:0]
	cp.commits = nil
	cp.since = time.Time{}
	return true
}

func (cp *CachedPartition) write(producer goka.Producer, key string, value any, w *tableWrite) error {
	if producer == nil || cp.store == nil {
		return ErrNoProducer
	}
	data, err := cp.c.codec.Encode(value)
	if err != nil {
		return fmt.Errorf("encode %s row %q: %w", cp.c.topic, key, err)
	}
	if err := cp.store.Set(key, data); err != nil {
		return fmt.Errorf("store %s row %q: %w", cp.c.topic, key, err)
	}
	producer.Emit(cp.c.topic, key, data).ThenWithMessage(w.done)
	return nil
}

// unbind forgets st when goka closes it; rows still held (their write
// failed or never ran) are dropped with their commits failed.
func (cp *CachedPartition) unbind(st storage.Storage) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.store != st {
		return
	}
	cp.store = nil
	if len(cp.rows) > 0 {
		cp.c.log.Warn("table cache: partition closed with rows unwritten; their input is read again", "partition", cp.id, "rows", len(cp.rows))
		for _, f := range cp.commits {
			f(errors.New("stream: table partition closed before its rows were written"))
		}
		clear(cp.rows)
		cp.order = cp.order[:0]
		cp.commits = nil
		cp.since = time.Time{}
	}
}

// tableWrite finishes one Flush's deferred commits after its last record.
type tableWrite struct {
	c        *TableCache
	mu       sync.Mutex
	inFlight *atomic.Int64
	store    storage.Storage
	pending  int
	offset   int64
	err      error
	commits  []func(error)
}

func (w *tableWrite) done(msg *sarama.ProducerMessage, err error) {
	w.mu.Lock()
	if err != nil && w.err == nil {
		w.err = err
	}
	if msg != nil && msg.Offset > w.offset {
		w.offset = msg.Offset
	}
	w.pending--
	last := w.pending == 0
	w.mu.Unlock()
	w.inFlight.Add(-1)
	if !last {
		return
	}
	if w.err == nil && w.offset > 0 && w.c.fenceErr() == nil {
		// As goka does after a table write: where recovery resumes. Not
		// when the membership is unconfirmed: a write sent just before a
		// stall lands after the next owner's records, and recovery from
		// past it would skip them; from the older offset it only reads
		// this member's own records again.
		if err := w.store.SetOffset(w.offset); err != nil {
			w.err = err
		}
	}
	for _, f := range w.commits {
		f(w.err)
	}
}

// Package tablestore is goka table storage on LevelDB that batches writes.
//
// goka's default storage writes every table update (and, once recovered,
// every changelog offset) to LevelDB one by one. Local table storage is only
// a cache of the changelog, so Inarious collects updates in memory and writes
// them, with the offset they belong to, in one LevelDB batch every flush
// interval. A crash loses at most that window of local writes; the offset in
// LevelDB always matches the values beside it, so goka re-reads the rest
// from the changelog. Repeated updates of one key within a window are
// written once.
package tablestore

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// offsetKey is goka's, so directories written by goka's storage still load.
const offsetKey = "__offset"

// Options tune the batching.
type Options struct {
	// FlushInterval is the longest an update waits in memory.
	FlushInterval time.Duration
	// MaxPending flushes early once this many keys wait.
	MaxPending int
}

// DefaultOptions bound what a crash can lose to 200 ms of local writes.
func DefaultOptions() Options {
	return Options{FlushInterval: 200 * time.Millisecond, MaxPending: 8192}
}

// Builder opens one store per topic partition under dir.
func Builder(dir string, opts Options) storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		return Open(filepath.Join(dir, fmt.Sprintf("%s.%d", topic, partition)), opts)
	}
}

type entry struct {
	value   []byte
	deleted bool
}

// Store implements goka's storage.Storage.
type Store struct {
	db   *leveldb.DB
	opts Options

	mu       sync.Mutex
	pending  map[string]entry
	flushing map[string]entry // being written; still visible to readers
	offset   int64
	dirtyOff bool

	flushMu sync.Mutex // one batch write at a time
	err     error      // first failed flush; later writes report it

	life     sync.Mutex // orders Open against Close
	running  bool       // a flusher was started and Close must wait for it
	closed   bool
	dirty    chan struct{} // 1 slot: something became pending, the flusher's timer starts
	stop     chan struct{}
	stopped  chan struct{}
	closeErr error
	tickHook func() // tests only: runs inside a tick, before its flush
}

// Open opens or creates the store at path.
func Open(path string, opts Options) (*Store, error) {
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultOptions().FlushInterval
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = DefaultOptions().MaxPending
	}
	// A small write buffer keeps the journal LevelDB replays at open short:
	// warm restarts are what the local storage is for. A small block cache
	// per partition keeps memory flat (LevelDB's 8 MiB each added up to
	// 64 MiB with 8 partitions); hot clients are cached decoded elsewhere.
	db, err := leveldb.OpenFile(path, &opt.Options{WriteBuffer: 1 << 20, BlockCacheCapacity: 1 << 20})
	if err != nil {
		return nil, fmt.Errorf("tablestore: open %s: %w", path, err)
	}
	return &Store{
		db: db, opts: opts, pending: make(map[string]entry),
		dirty: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{}),
	}, nil
}

// Open starts the background flusher.
func (s *Store) Open() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return errors.New("tablestore: open after close")
	}
	if !s.running {
		s.running = true
		go s.flushLoop()
	}
	return nil
}

// flushLoop writes what is pending one flush interval after it became
// pending. It sleeps while nothing is: a store per table partition, each
// ticking five times a second, woke an idle process 200 times a second.
func (s *Store) flushLoop() {
	defer close(s.stopped)
	t := time.NewTimer(s.opts.FlushInterval)
	t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-s.dirty:
		}
		t.Reset(s.opts.FlushInterval)
		select {
		case <-s.stop:
			t.Stop()
			return
		case <-t.C:
		}
		if s.tickHook != nil {
			s.tickHook()
		}
		_ = s.Flush()
	}
}

// markDirty wakes the flusher; called with mu held when the store goes
// from nothing pending to something pending.
func (s *Store) markDirty() {
	select {
	case s.dirty <- struct{}{}:
	default: // already woken
	}
}

// Flush writes everything pending in one batch.
func (s *Store) Flush() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	if s.err != nil || (len(s.pending) == 0 && !s.dirtyOff) {
		err := s.err
		s.mu.Unlock()
		return err
	}
	batch := new(leveldb.Batch)
	for k, e := range s.pending {
		if e.deleted {
			batch.Delete([]byte(k))
		} else {
			batch.Put([]byte(k), e.value)
		}
	}
	wroteOff := s.dirtyOff
	if s.dirtyOff {
		batch.Put([]byte(offsetKey), []byte(strconv.FormatInt(s.offset, 10)))
		s.dirtyOff = false
	}
	s.flushing, s.pending = s.pending, make(map[string]entry, len(s.pending))
	s.mu.Unlock()

	err := s.db.Write(batch, nil)

	s.mu.Lock()
	if err != nil {
		// Not written (a full disk, say): the values stay visible, or a
		// read would fall back to LevelDB's older ones and a count would go
		// down. Later updates of a key win.
		for k, e := range s.flushing {
			if _, newer := s.pending[k]; !newer {
				s.pending[k] = e
			}
		}
		s.dirtyOff = s.dirtyOff || wroteOff
		if s.err == nil {
			s.err = fmt.Errorf("tablestore: write batch: %w", err)
		}
	}
	s.flushing = nil
	err = s.err
	s.mu.Unlock()
	return err
}

func (s *Store) put(key string, e entry) error {
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return err
	}
	if len(s.pending) == 0 && !s.dirtyOff {
		s.markDirty()
	}
	s.pending[key] = e
	full := len(s.pending) >= s.opts.MaxPending
	s.mu.Unlock()
	if full {
		return s.Flush()
	}
	return nil
}

// lookup finds key among unwritten updates.
func (s *Store) lookup(key string) (entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.pending[key]; ok {
		return e, true
	}
	e, ok := s.flushing[key]
	return e, ok
}

// Has reports whether key has a value.
func (s *Store) Has(key string) (bool, error) {
	if e, ok := s.lookup(key); ok {
		return !e.deleted, nil
	}
	return s.db.Has([]byte(key), nil)
}

// Get returns key's value, nil when there is none.
func (s *Store) Get(key string) ([]byte, error) {
	if e, ok := s.lookup(key); ok {
		if e.deleted {
			return nil, nil
		}
		return e.value, nil
	}
	v, err := s.db.Get([]byte(key), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tablestore: get %q: %w", key, err)
	}
	return v, nil
}

// Set stores value for key. goka does not reuse value after the call.
func (s *Store) Set(key string, value []byte) error { return s.put(key, entry{value: value}) }

// Delete removes key.
func (s *Store) Delete(key string) error { return s.put(key, entry{deleted: true}) }

// GetOffset returns the changelog offset the stored values reflect.
func (s *Store) GetOffset(def int64) (int64, error) {
	s.mu.Lock()
	if s.dirtyOff {
		o := s.offset
		s.mu.Unlock()
		return o, nil
	}
	s.mu.Unlock()
	v, err := s.db.Get([]byte(offsetKey), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return def, nil
	}
	if err != nil {
		return 0, fmt.Errorf("tablestore: read offset: %w", err)
	}
	o, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("tablestore: stored offset %q: %w", v, err)
	}
	return o, nil
}

// SetOffset records the changelog offset; it is written with the next batch.
func (s *Store) SetOffset(offset int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) == 0 && !s.dirtyOff {
		s.markDirty()
	}
	s.offset = offset
	s.dirtyOff = true
	return s.err
}

// MarkRecovered writes what recovery loaded.
func (s *Store) MarkRecovered() error { return s.Flush() }

// Iterator iterates a snapshot of all values, pending ones included.
func (s *Store) Iterator() (storage.Iterator, error) {
	return s.IteratorWithRange(nil, nil)
}

// IteratorWithRange iterates keys in [start, limit), or with prefix start
// when limit is empty, as goka's storage does.
func (s *Store) IteratorWithRange(start, limit []byte) (storage.Iterator, error) {
	// Reads are rare next to writes: flushing first keeps iteration simple.
	if err := s.Flush(); err != nil {
		return nil, err
	}
	var r *util.Range
	switch {
	case len(limit) > 0:
		r = &util.Range{Start: start, Limit: limit}
	case len(start) > 0:
		r = util.BytesPrefix(start)
	}
	return &keyIterator{it: s.db.NewIterator(r, nil)}, nil
}

// Close stops the flusher, waits until it is done (a tick still running
// would otherwise write to a closed database), flushes and closes the
// database. Later calls wait for the first and return its result.
func (s *Store) Close() error {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return s.closeErr
	}
	s.closed = true
	close(s.stop)
	if s.running {
		<-s.stopped
	}
	s.closeErr = errors.Join(s.Flush(), s.db.Close())
	return s.closeErr
}

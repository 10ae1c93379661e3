package tablestore

import (
	"sync"
	"sync/atomic"

	"github.com/lovoo/goka/storage"
)

// Registry keeps the storages goka holds open, by topic and partition, for
// code outside goka's callbacks that reads them (a janitor, a query
// endpoint, a pruner): a read keeps goka from closing the storage until it
// returns, and a storage goka closes is forgotten.
type Registry struct {
	mu   sync.Mutex
	open map[string]map[int32]*Tracked
}

// Tracked is a storage a Registry keeps while goka holds it open.
type Tracked struct {
	storage.Storage
	mu      sync.RWMutex // held for reading by reads, for writing by Close
	closing atomic.Bool
	forget  func()
}

// Layer tracks the storages of the topics track accepts.
func (r *Registry) Layer(track func(topic string) bool) Layer {
	return func(b storage.Builder) storage.Builder {
		return func(topic string, partition int32) (storage.Storage, error) {
			st, err := b(topic, partition)
			if err != nil || !track(topic) {
				return st, err
			}
			return r.add(topic, partition, st), nil
		}
	}
}

func (r *Registry) add(topic string, partition int32, st storage.Storage) *Tracked {
	t := &Tracked{Storage: st}
	t.forget = func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.open[topic][partition] == t {
			delete(r.open[topic], partition)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.open == nil {
		r.open = map[string]map[int32]*Tracked{}
	}
	if r.open[topic] == nil {
		r.open[topic] = map[int32]*Tracked{}
	}
	r.open[topic][partition] = t
	return t
}

// Close forgets the storage and closes it once the reads of it returned;
// a long read sees Closing and stops early.
func (t *Tracked) Close() error {
	t.closing.Store(true)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.forget()
	return t.Storage.Close()
}

// Closing reports whether goka is closing the storage: a read that scans
// it stops early then, and Close waits for it.
func (t *Tracked) Closing() bool { return t.closing.Load() }

// Read calls fn with the open storage of topic's partition, which stays
// open until fn returns (fn must not close it). It reports false, without
// calling fn, when goka holds no such storage open or is closing it.
func (r *Registry) Read(topic string, partition int32, fn func(*Tracked) error) (bool, error) {
	r.mu.Lock()
	t := r.open[topic][partition]
	r.mu.Unlock()
	if t == nil {
		return false, nil
	}
	return t.read(fn)
}

// ReadAll calls fn, as Read does, with each storage of topic open now, and
// stops at the first error.
func (r *Registry) ReadAll(topic string, fn func(*Tracked) error) error {
	r.mu.Lock()
	open := make([]*Tracked, 0, len(r.open[topic]))
	for _, t := range r.open[topic] {
		open = append(open, t)
	}
	r.mu.Unlock()
	for _, t := range open {
		if _, err := t.read(fn); err != nil {
			return err
		}
	}
	return nil
}

func (t *Tracked) read(fn func(*Tracked) error) (bool, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.Closing() {
		return false, nil
	}
	return true, fn(t)
}

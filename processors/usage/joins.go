package usage

import (
	"errors"
	"fmt"
	"sync"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/windows"
)

// windowJoins are the windowed topics' partitions this member joins, by
// topic and partition, while goka holds them open.
type windowJoins struct {
	on     bool
	mu     sync.Mutex
	stores map[string]map[int32]*trackedStore
}

// WithWindowJoins joins each windowed topic (goka.Join) in the group graph:
// every member then recovers, before it runs, and follows the partitions of
// the windowed topics matching those it is assigned, which hold the closed
// buckets of its own clients (their records are placed by client, see
// internal/stream). A worker serving queries reads them with ScanWindow.
// The windowed topics must be co-partitioned with Users (WindowTopic).
func WithWindowJoins() Option { return func(p *Processor) { p.joins.on = true } }

// windowJoins are the Join edges of WithWindowJoins. goka's Validate allows
// a topic to be both an Output and a Join of a group.
func (p *Processor) windowJoins() []goka.Edge {
	if !p.joins.on {
		return nil
	}
	edges := make([]goka.Edge, 0, len(p.windows.Specs))
	for _, s := range p.windows.Specs {
		edges = append(edges, goka.Join(goka.Table(windows.Topic(s.Step)), new(codecs.WindowCounts)))
	}
	return edges
}

// trackJoins keeps the storages goka builds for joined windowed topics, until
// it closes them (a rebalance, a stop), as WrapStorage keeps the table's.
func (p *Processor) trackJoins(b storage.Builder) storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		st, err := b(topic, partition)
		if err != nil || !p.joins.on || !windows.IsTopic(topic) {
			return st, err
		}
		j := &p.joins
		t := &trackedStore{Storage: st}
		t.closed = func() {
			j.mu.Lock()
			defer j.mu.Unlock()
			if j.stores[topic][partition] == t {
				delete(j.stores[topic], partition)
			}
		}
		j.mu.Lock()
		defer j.mu.Unlock()
		if j.stores == nil {
			j.stores = map[string]map[int32]*trackedStore{}
		}
		if j.stores[topic] == nil {
			j.stores[topic] = map[int32]*trackedStore{}
		}
		j.stores[topic][partition] = t
		return t, nil
	}
}

// ErrNotJoined is ScanWindow's answer for a partition this member does not
// hold (not assigned, or closed by a rebalance).
var ErrNotJoined = errors.New("windowed partition not joined by this member")

// ScanWindow calls fn, in key order, with each record of the joined
// partition of a windowed topic whose key lies in [start, limit), as it is
// in local storage (goka follows the topic behind it). The storage stays
// open until fn returns for the last time.
func (p *Processor) ScanWindow(topic string, partition int32, start, limit string, fn func(key string, value []byte) error) error {
	p.joins.mu.Lock()
	t := p.joins.stores[topic][partition]
	p.joins.mu.Unlock()
	if t == nil {
		return fmt.Errorf("%s/%d: %w", topic, partition, ErrNotJoined)
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closing.Load() {
		return fmt.Errorf("%s/%d: %w", topic, partition, ErrNotJoined)
	}
	it, err := t.Storage.IteratorWithRange([]byte(start), []byte(limit))
	if err != nil {
		return err
	}
	defer it.Release()
	for it.Next() {
		v, err := it.Value()
		if err != nil {
			return err
		}
		if err := fn(string(it.Key()), v); err != nil {
			return err
		}
	}
	return it.Err()
}

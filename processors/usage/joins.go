package usage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

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
// PartitionKey). A worker serving queries reads them with ScanWindow.
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

// pruneJoinsEvery is how often a member prunes its joined windowed
// partitions: a 48th of the shortest retention, between a minute and a day
// (the views' pruner's pace).
func (p *Processor) pruneJoinsEvery() time.Duration {
	every := 24 * time.Hour
	for _, s := range p.windows.Specs {
		every = min(every, max(s.Retention/48, time.Minute))
	}
	return every
}

// PruneWindows deletes from the joined partitions' local storage the buckets
// that start before now minus their granularity's retention and one step,
// and says how many. Kafka's retention bounds what a recovery reads, not
// what a long-running member keeps; the views prune theirs the same way.
func (p *Processor) PruneWindows(now time.Time) (int, error) {
	p.joins.mu.Lock()
	var stores []*trackedStore
	var cutoffs []int64
	for _, s := range p.windows.Specs {
		cutoff := windows.StartUnix(now.Add(-s.Retention).UnixNano(), s.Step) - int64(s.Step/time.Second)
		for _, t := range p.joins.stores[windows.Topic(s.Step)] {
			stores, cutoffs = append(stores, t), append(cutoffs, cutoff)
		}
	}
	p.joins.mu.Unlock()
	deleted := 0
	for i, t := range stores {
		n, err := t.pruneBuckets(cutoffs[i])
		deleted += n
		if err != nil {
			return deleted, err
		}
	}
	return deleted, nil
}

// pruneBuckets deletes the buckets starting before cutoff (Unix seconds).
// Keys sort by client, then start, so old keys are spread through the
// partition: it reads it all, then deletes what it found.
func (t *trackedStore) pruneBuckets(cutoff int64) (int, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closing.Load() {
		return 0, nil
	}
	it, err := t.Storage.Iterator()
	if err != nil {
		return 0, err
	}
	var old []string
	for it.Next() && !t.closing.Load() {
		if _, start, ok := windows.ParseKey(string(it.Key())); ok && start < cutoff {
			old = append(old, string(it.Key()))
		}
	}
	err = it.Err()
	it.Release()
	if err != nil {
		return 0, err
	}
	for i, k := range old {
		if err := t.Storage.Delete(k); err != nil {
			return i, err
		}
	}
	return len(old), nil
}

// pruneJoins runs PruneWindows every pruneJoinsEvery until ctx ends.
func (p *Processor) pruneJoins(ctx context.Context) {
	t := time.NewTicker(p.pruneJoinsEvery())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := p.PruneWindows(p.now()); err != nil {
			p.log.Warn("pruning joined windowed partitions failed", "err", err)
		} else if n > 0 {
			p.log.Info("pruned joined windowed partitions", "deleted", n)
		}
	}
}

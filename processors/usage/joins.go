package usage

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/tablestore"
	"github.com/inarious/inarious/internal/windows"
)

// WithWindowJoins joins each windowed topic (goka.Join) in the group graph:
// every member then recovers, before it runs, and follows the partitions of
// the windowed topics matching those it is assigned, which hold the closed
// buckets of its own clients (their records are placed by client, see
// PartitionKey). A worker serving queries reads them with ScanWindow.
// The windowed topics must be co-partitioned with Users (WindowTopic).
func WithWindowJoins() Option { return func(p *Processor) { p.joins = true } }

// windowJoins are the Join edges of WithWindowJoins. goka's Validate allows
// a topic to be both an Output and a Join of a group.
func (p *Processor) windowJoins() []goka.Edge {
	if !p.joins {
		return nil
	}
	edges := make([]goka.Edge, 0, len(p.windows.Specs))
	for _, s := range p.windows.Specs {
		edges = append(edges, goka.Join(goka.Table(windows.Topic(s.Step)), new(codecs.WindowCounts)))
	}
	return edges
}

// ErrNotJoined is ScanWindow's answer for a partition this member does not
// hold (not assigned, or closed by a rebalance).
var ErrNotJoined = errors.New("windowed partition not joined by this member")

// ScanWindow calls fn, in key order, with each record of the joined
// partition of a windowed topic whose key lies in [start, limit), as it is
// in local storage (goka follows the topic behind it). The storage stays
// open until fn returns for the last time.
func (p *Processor) ScanWindow(topic string, partition int32, start, limit string, fn func(key string, value []byte) error) error {
	held := false
	var err error
	if p.joins && windows.IsTopic(topic) {
		held, err = p.open.Read(topic, partition, func(st *tablestore.Tracked) error {
			return scanRange(st, start, limit, fn)
		})
	}
	if err == nil && !held {
		return fmt.Errorf("%s/%d: %w", topic, partition, ErrNotJoined)
	}
	return err
}

// scanRange calls fn, in key order, with each record of st whose key lies
// in [start, limit).
func scanRange(st storage.Storage, start, limit string, fn func(key string, value []byte) error) error {
	it, err := st.IteratorWithRange([]byte(start), []byte(limit))
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

// PruneWindows deletes from the joined partitions' local storage the buckets
// that start before now minus their granularity's retention and one step,
// and says how many. Kafka's retention bounds what a recovery reads, not
// what a long-running member keeps; the views prune theirs the same way
// (windows.Prune).
func (p *Processor) PruneWindows(now time.Time) (int, error) {
	deleted := 0
	for _, s := range p.windows.Specs {
		err := p.open.ReadAll(windows.Topic(s.Step), func(st *tablestore.Tracked) error {
			it, err := st.Iterator()
			if err != nil {
				return err
			}
			defer it.Release()
			n, err := windows.Prune(storedKeys{it, st}, s.PruneBefore(now), func(key string) (bool, error) {
				return true, st.Delete(key)
			})
			deleted += n
			return err
		})
		if err != nil {
			return deleted, err
		}
	}
	return deleted, nil
}

// storedKeys are a joined partition's keys as windows.Prune walks them, up
// to goka closing the partition. Seek relies on the storage's iterator
// seeking as LevelDB's does (tablestore); goka's memory storage seeks by
// prefix, so over it a prune ends at the first client with young keys.
type storedKeys struct {
	it storage.Iterator
	st *tablestore.Tracked
}

func (k storedKeys) Next() bool           { return !k.st.Closing() && k.it.Next() }
func (k storedKeys) Key() string          { return string(k.it.Key()) }
func (k storedKeys) Seek(key string) bool { return !k.st.Closing() && k.it.Seek([]byte(key)) }
func (k storedKeys) Err() error           { return k.it.Err() }

// pruneJoins runs PruneWindows every windows.Config.PruneEvery until ctx
// ends.
func (p *Processor) pruneJoins(ctx context.Context) {
	t := time.NewTicker(p.windows.PruneEvery())
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

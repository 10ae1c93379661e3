package endpoints

import (
	"context"
	"fmt"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/tablestore"
)

// Bucket rows past their granularity's retention are deleted by the group
// itself, so the deletion reaches the changelog: each member's janitor
// scans the partitions it holds every windows.Config.PruneEvery and writes
// a prune partial per expired row; the row's callback checks again and
// deletes it.

// WrapStorage adds the layers of WithStorageLayer and keeps the table's
// partitions readable by the janitor and ScanTable (stream.StorageWrapper).
func (p *Processor) WrapStorage(b storage.Builder) storage.Builder {
	return tablestore.Stack(tablestore.Stack(b, p.layers...), p.open.Layer(func(topic string) bool { return topic == string(Table) }))
}

// ScanTable calls fn with each row of the table's partition whose key lies
// in [start, limit), in key order, from local storage; held is false, and
// fn not called, when this member holds no such partition open.
func (p *Processor) ScanTable(partition int32, start, limit string, fn func(key string, value []byte) error) (held bool, err error) {
	return p.open.Read(string(Table), partition, func(st *tablestore.Tracked) error {
		it, err := st.IteratorWithRange([]byte(start), []byte(limit))
		if err != nil {
			return err
		}
		defer it.Release()
		for it.Next() && !st.Closing() {
			v, err := it.Value()
			if err != nil {
				return err
			}
			if err := fn(string(it.Key()), v); err != nil {
				return err
			}
		}
		return it.Err()
	})
}

// expired reports whether the bucket row of key is past its retention at
// now; false for all-time rows and granularities no longer kept (those
// stay until a granularity of their step is kept again).
func (p *Processor) expired(key string, now time.Time) bool {
	_, step, start, bucket, ok := ParseKey(key)
	if !ok || !bucket {
		return false
	}
	spec, kept := p.windows.Spec(step)
	return kept && start < spec.PruneBefore(now)
}

// prune is the callback of a prune partial.
func (p *Processor) prune(ctx goka.Context) {
	if ctx.Value() == nil || !p.expired(ctx.Key(), p.now()) {
		return
	}
	ctx.Delete()
	p.pruned.Add(1)
}

// ExpiredBuckets calls fn with the key of each bucket row past its
// retention in the partitions this member holds. It reads local storage,
// seeking past an endpoint's young buckets of a step (keys sort by
// endpoint, step, start), so a scan costs about one seek per endpoint and
// step plus one step per expired row.
func (p *Processor) ExpiredBuckets(now time.Time, fn func(key string)) error {
	return p.open.ReadAll(string(Table), func(st *tablestore.Tracked) error {
		it, err := st.Iterator()
		if err != nil {
			return err
		}
		defer it.Release()
		more := it.Next()
		for more && !st.Closing() {
			key := string(it.Key())
			endpoint, step, _, bucket, ok := ParseKey(key)
			switch {
			case p.expired(key, now):
				fn(key)
				more = it.Next()
			case ok && bucket:
				more = it.Seek([]byte(BucketKey(endpoint, step, lastStart) + "\x00"))
			default:
				more = it.Next()
			}
		}
		return it.Err()
	})
}

// lastStart is the largest start a key holds.
const lastStart = 999_999_999_999

// janitor runs PruneExpired every PruneEvery until ctx ends.
func (p *Processor) janitor(ctx context.Context, cfg kafka.Config) error {
	t := time.NewTicker(p.windows.PruneEvery())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if n, err := p.PruneExpired(ctx, cfg, p.now()); err != nil {
			p.log.Warn("janitor: pruning failed", "err", err)
		} else if n > 0 {
			p.log.Info("janitor: asked to prune expired buckets", "rows", n)
		}
	}
}

// PruneExpired writes a prune partial for every bucket row of this
// member's partitions past its retention at now, and says how many.
func (p *Processor) PruneExpired(ctx context.Context, cfg kafka.Config, now time.Time) (int, error) {
	var keys []string
	if err := p.ExpiredBuckets(now, func(key string) { keys = append(keys, key) }); err != nil || len(keys) == 0 {
		return 0, err
	}
	n, err := cfg.TopicPartitions(ctx, string(PartialsTopic))
	if err != nil {
		return 0, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ClientID(cfg.ClientID), kgo.RecordPartitioner(keyPartitioner(n)))
	if err != nil {
		return 0, fmt.Errorf("endpoints janitor: %w", err)
	}
	defer cl.Close()
	prune, err := (&Partial{Prune: true}).marshal()
	if err != nil {
		return 0, err
	}
	recs := make([]*kgo.Record, len(keys))
	for i, k := range keys {
		recs[i] = &kgo.Record{Topic: string(PartialsTopic), Key: []byte(k), Value: prune}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return 0, err
	}
	return len(keys), nil
}

// keyPartitioner places partials by their endpoint, as Hasher does.
func keyPartitioner(partitions int) kgo.Partitioner {
	return kgo.BasicConsistentPartitioner(func(string) func(*kgo.Record, int) int {
		return func(r *kgo.Record, _ int) int { return int(PartitionOf(string(r.Key), partitions)) }
	})
}

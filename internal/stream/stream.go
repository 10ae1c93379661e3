// Package stream builds and supervises goka processors for Inarious'
// processor groups: one wiring over the shared Kafka configuration and local
// table storage, and a loop that rebuilds a processor when Kafka goes away.
package stream

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"

	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/metrics"
	"github.com/inarious/inarious/internal/tablestore"
)

// StorageFull reports whether err comes from local storage that ran out of
// space (goka reports some causes by text only).
func StorageFull(err error) bool {
	return err != nil && (errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), syscall.ENOSPC.Error()))
}

// Group is a processor group as its component package defines it.
type Group interface {
	// Graph is the goka group graph; it is built anew for every processor.
	Graph() *goka.GroupGraph
	// Rebalanced runs before the partitions of a new generation start, after
	// the old ones stopped (goka's rebalance callback), e.g. to drop caches.
	Rebalanced(goka.Assignment)
}

// StorageWrapper is implemented by a Group that layers the local storage
// goka opens (an index following its writes, a registry of open partitions
// for reads outside goka's callbacks, a TableCache): NewProcessor hands it
// the LevelDB storage builder to wrap, in one tablestore.Stack.
type StorageWrapper interface {
	WrapStorage(storage.Builder) storage.Builder
}

// ProducerUser is implemented by a Group that writes through the producer
// goka builds for its processor (e.g. a TableCache): NewProcessor hands it
// every producer built.
type ProducerUser interface {
	UseProducer(goka.Producer)
}

// Component is a processor group as the composition root runs it: what its
// package declares (topics, metrics) and how it runs.
type Component interface {
	// Topics the group reads and writes, created before anything starts.
	Topics() []kafka.TopicSpec
	// Counters are its metrics.
	Counters() []metrics.Counter
	// Run runs one member until ctx ends (usually through stream.Run).
	Run(ctx context.Context, cfg kafka.Config, dataDir string, onStart func(*goka.Processor)) error
}

// NewProcessor builds one member of g, with its local table storage under
// dataDir/<group>, so a restart recovers only the changelog tail. It creates
// no topics: the composition root ensures them first.
func NewProcessor(cfg kafka.Config, g Group, dataDir string, opts ...Option) (*goka.Processor, error) {
	return newProcessor(cfg, g, dataDir, settingsOf(opts))
}

func newProcessor(cfg kafka.Config, g Group, dataDir string, s settings) (*goka.Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	graph := g.Graph()
	sb := tablestore.Builder(filepath.Join(dataDir, string(graph.Group())), tablestore.DefaultOptions())
	if w, ok := g.(StorageWrapper); ok {
		sb = w.WrapStorage(sb)
	}
	base := append(cfg.ProcessorOptions(s.log),
		goka.WithStorageBuilder(sb),
		goka.WithProducerBuilder(handOver(producerBuilder(cfg, graph, placementOf(g)), g)),
		goka.WithRebalanceCallback(g.Rebalanced),
	)
	proc, err := goka.NewProcessor(cfg.Brokers, graph, append(base, s.goka...)...)
	if err != nil {
		return nil, fmt.Errorf("processor %s: %w", graph.Group(), err)
	}
	return proc, nil
}

// producerBuilder is the configured client, idempotent, hence in order: a
// group's loopback relies on the records of one source partition arriving in
// the order they were emitted, and the coalescer on a key's values arriving
// in the order of its flushes. The group table's changelog records are
// coalesced per key (see Coalescer). Records are placed by their partition
// key (the group's KeyPlacer), in every producer.
func producerBuilder(cfg kafka.Config, graph *goka.GroupGraph, place Placement) goka.ProducerBuilder {
	build := SaramaProducerBuilder(cfg.IdempotentProducer(), place)
	if cfg.Producer == kafka.ProducerFranz {
		build = FranzProducerBuilder(cfg.FlushInterval, place)
	}
	if t := graph.GroupTable(); t != nil {
		build = CoalescingBuilder(build, t.Topic(), DefaultCoalesceOptions())
	}
	return build
}

// handOver hands the producers build builds to g, if g uses them.
func handOver(build goka.ProducerBuilder, g Group) goka.ProducerBuilder {
	u, ok := g.(ProducerUser)
	if !ok {
		return build
	}
	return func(brokers []string, clientID string, hasher func() hash.Hash32) (goka.Producer, error) {
		p, err := build(brokers, clientID, hasher)
		if err == nil {
			u.UseProducer(p)
		}
		return p, err
	}
}

// Backoff between rebuilds of a processor that lost Kafka.
const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// Run runs a member of g until ctx ends; on the way out goka commits what it
// processed and leaves the group. onStart, if not nil, sees every processor
// built (e.g. for monitoring pages).
//
// goka stops a processor for good when its consumer group loses the brokers
// (lovoo/goka#172), and a processor runs only once. So until ctx ends Run
// builds a new processor over the same local storage and the same g (whose
// counters live on), with backoff, and rejoins the group when Kafka is back;
// the group's own replay skipping makes the re-read input harmless.
func Run(ctx context.Context, cfg kafka.Config, g Group, dataDir string, onStart func(*goka.Processor), opts ...Option) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	s := settingsOf(opts)
	log := s.log
	backoff := minBackoff
	var streak string // cause of the failures since the last long run, logged once
	for {
		proc, err := newProcessor(cfg, g, dataDir, s)
		if err == nil {
			if onStart != nil {
				onStart(proc)
			}
			log.Info("processor starting", "brokers", cfg.Brokers)
			started := time.Now()
			err = proc.Run(ctx)
			log.Info("processor stopped", "err", err)
			if ctx.Err() != nil {
				if errors.Is(err, context.Canceled) {
					return nil
				}
				return err
			}
			if time.Since(started) > time.Minute {
				backoff, streak = minBackoff, ""
			}
		}
		cause := "kafka"
		if StorageFull(err) {
			cause = "storage"
		}
		switch cause {
		case streak: // logged when the streak began
			log.Debug("processor failed again; rebuilding it", "cause", cause, "err", err, "retry_in", backoff)
		case "storage":
			log.Error("local storage full: this member stops counting (its partitions go to other members) and retries until space is freed",
				"data_dir", dataDir, "err", err, "retry_in", backoff)
		default:
			log.Warn("processor lost Kafka; rebuilding it", "err", err, "retry_in", backoff)
		}
		streak = cause
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

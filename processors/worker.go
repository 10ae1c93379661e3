package processors

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/tablestore"
)

// DefaultValueCache is how many decoded clients a worker keeps in memory,
// split over partitions: about 1.5 KB each with five endpoints.
const DefaultValueCache = 32768

// NewWorker builds a member of the usage processor group. Its local table
// storage lives under dataDir, so a restart recovers only the changelog tail.
// Extra options (tests swap builders) come last and win.
func NewWorker(cfg kafka.Config, dataDir string, log *slog.Logger, opts ...goka.ProcessorOption) (*goka.Processor, *Usage, error) {
	usage := NewWorkerUsage(cfg, log)
	proc, err := NewWorkerFor(usage, cfg, dataDir, log, opts...)
	if err != nil {
		return nil, nil, err
	}
	return proc, usage, nil
}

// NewWorkerUsage is the usage counter a worker runs: with the value cache,
// which NewWorkerFor keeps correct by clearing it on every rebalance.
func NewWorkerUsage(cfg kafka.Config, log *slog.Logger) *Usage {
	return NewUsage(log, WithValueCache(DefaultValueCache/max(cfg.Partitions, 1)+1))
}

// NewWorkerFor is NewWorker counting into usage. A goka processor runs only
// once, so a worker that rebuilds its processor after losing Kafka passes the
// same usage again and keeps its counters (and whatever watches them).
func NewWorkerFor(usage *Usage, cfg kafka.Config, dataDir string, log *slog.Logger, opts ...goka.ProcessorOption) (*goka.Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	if err := cfg.EnsureTopics(); err != nil {
		return nil, err
	}
	sc := cfg.Sarama()
	base := []goka.ProcessorOption{
		goka.WithClientID(cfg.ClientID),
		goka.WithHasher(kafka.Hasher),
		goka.WithStorageBuilder(tablestore.Builder(filepath.Join(dataDir, "processor"), tablestore.DefaultOptions())),
		goka.WithTopicManagerBuilder(cfg.TopicManagerBuilder()),
		goka.WithConsumerGroupBuilder(goka.ConsumerGroupBuilderWithConfig(sc)),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(sc)),
		goka.WithProducerBuilder(goka.ProducerBuilderWithConfig(sc)),
		goka.WithLogger(kafka.GokaLogger(log)),
		goka.WithRebalanceCallback(usage.RebalanceCallback),
	}
	proc, err := goka.NewProcessor(cfg.Brokers, usage.Graph(), append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("usage processor: %w", err)
	}
	return proc, nil
}

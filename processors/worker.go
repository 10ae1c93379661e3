package processors

import (
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/kafkaconf"
	"github.com/inarious/inarious/tablestore"
)

// NewWorker builds a member of the usage processor group. Its local table
// storage lives under dataDir, so a restart recovers only the changelog tail.
// Extra options (tests swap builders) come last and win.
func NewWorker(cfg kafkaconf.Config, dataDir string, log *slog.Logger, opts ...goka.ProcessorOption) (*goka.Processor, *Usage, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	if err := cfg.EnsureTopics(); err != nil {
		return nil, nil, err
	}
	usage := NewUsage(log)
	sc := cfg.Sarama()
	base := []goka.ProcessorOption{
		goka.WithClientID(cfg.ClientID),
		goka.WithHasher(kafkaconf.Hasher),
		goka.WithStorageBuilder(tablestore.Builder(filepath.Join(dataDir, "processor"), tablestore.DefaultOptions())),
		goka.WithTopicManagerBuilder(cfg.TopicManagerBuilder()),
		goka.WithConsumerGroupBuilder(goka.ConsumerGroupBuilderWithConfig(sc)),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(sc)),
		goka.WithProducerBuilder(goka.ProducerBuilderWithConfig(sc)),
		goka.WithLogger(kafkaconf.GokaLogger(log)),
	}
	proc, err := goka.NewProcessor(cfg.Brokers, usage.Graph(), append(base, opts...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("usage processor: %w", err)
	}
	return proc, usage, nil
}

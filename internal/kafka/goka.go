package kafka

import (
	"log/slog"
	"time"

	"github.com/lovoo/goka"
)

// The goka options of every processor, view and emitter, built here once.
// goka applies options in order, so a caller appends what differs (its
// storage, another hasher, a longer fetch wait) and wins.

// ProcessorOptions are a processor's options: client id, murmur2 placement
// (Hasher), topic manager, consumers over Sarama() (tables through TableConsumerBuilder) and goka's log on log
// (nil: slog.Default()). The storage and the producer are the group's:
// internal/stream adds them.
func (c Config) ProcessorOptions(log *slog.Logger) []goka.ProcessorOption {
	sc := c.Sarama()
	return []goka.ProcessorOption{
		goka.WithClientID(c.ClientID),
		goka.WithHasher(Hasher),
		goka.WithTopicManagerBuilder(c.TopicManagerBuilder()),
		goka.WithConsumerGroupBuilder(c.consumerGroupBuilder(sc)),
		goka.WithConsumerSaramaBuilder(TableConsumerBuilder(sc)),
		goka.WithLogger(GokaLogger(log)),
	}
}

// ViewOptions are a view's options: client id, murmur2 placement, topic
// manager, consumer over Sarama() (TableConsumerBuilder), goka's log on log (nil: slog.Default()),
// and reconnecting: a view keeps serving its last state while the broker
// is away, and follows it again within seconds once it is back. The
// storage is the caller's.
func (c Config) ViewOptions(log *slog.Logger) []goka.ViewOption {
	return []goka.ViewOption{
		goka.WithViewClientID(c.ClientID),
		goka.WithViewHasher(Hasher),
		goka.WithViewTopicManagerBuilder(c.TopicManagerBuilder()),
		goka.WithViewConsumerSaramaBuilder(TableConsumerBuilder(c.Sarama())),
		goka.WithViewLogger(GokaLogger(log)),
		goka.WithViewAutoReconnect(),
		// goka's reconnect backoff grows by 10 s per retry up to 2 min, so after
		// an outage a view would lag the returned broker by up to that long.
		goka.WithViewBackoffBuilder(reconnectBackoff),
	}
}

// EmitterOptions are an emitter's options: client id, murmur2 placement,
// the idempotent producer (IdempotentProducer), topic manager and goka's log
// on log (nil: slog.Default()).
func (c Config) EmitterOptions(log *slog.Logger) []goka.EmitterOption {
	return []goka.EmitterOption{
		goka.WithEmitterClientID(c.ClientID),
		goka.WithEmitterHasher(Hasher),
		goka.WithEmitterProducerBuilder(goka.ProducerBuilderWithConfig(c.IdempotentProducer())),
		goka.WithEmitterTopicManagerBuilder(c.TopicManagerBuilder()),
		goka.WithEmitterLogger(GokaLogger(log)),
	}
}

// reconnectBackoff retries a lost broker after 1 s, 2 s, … at most 5 s apart.
func reconnectBackoff() (goka.Backoff, error) {
	return goka.NewSimpleBackoff(time.Second, 5*time.Second), nil
}

// Package kafka turns Inarious' Kafka settings into the sarama and goka
// configuration every component shares, and makes sure the topics exist.
package kafka

import (
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/rcrowley/go-metrics"
)

// Config is what a component needs to reach Kafka.
type Config struct {
	Brokers []string
	// Version is the Kafka protocol version sarama speaks; Kafka 4 needs >= 2.1.
	Version string
	// Partitions of the Users topic and hence of the usage table.
	Partitions int
	// Replication factor of topics Inarious creates.
	Replication int
	// MinInsyncReplicas is the min.insync.replicas of topics Inarious
	// creates: with acks=all a write fails rather than being acknowledged
	// by fewer replicas. 0 leaves the broker's default.
	MinInsyncReplicas int
	// FlushInterval bounds how long a produced record may wait in a batch;
	// goka's 100 ms default would dominate end-to-end freshness.
	FlushInterval time.Duration
	// ClientID names the process in broker logs and group membership.
	ClientID string
	// MemberUserData is sent with every JoinGroup of this process' consumer
	// groups, so the group's description tells others about the member
	// (a worker's query address, see internal/ownership).
	MemberUserData []byte
	// Producer is the client processors produce with: ProducerFranz
	// (franz-go; the default, ~14 % less CPU per event in BENCHMARKS.md) or
	// ProducerSarama (goka's own, also when empty).
	Producer string
	// OnSession, if not nil, is called as each session of a processor's
	// consumer group begins (before goka's own Setup), with the group's
	// name: a worker answering routed reads follows its membership there
	// (ownership.Lease).
	OnSession func(group string, sess sarama.ConsumerGroupSession)
}

// Kafka clients a processor can produce with.
const (
	ProducerSarama = "sarama"
	ProducerFranz  = "franz"
)

// A crashed worker's partitions move after the session timeout: every
// consumer group of Inarious uses the broker's minimum
// (group.min.session.timeout.ms, 6 s) instead of sarama's 10 s or
// franz-go's 45 s, and heartbeats every second so members learn of a
// rebalance sooner.
const (
	SessionTimeout    = 6 * time.Second
	HeartbeatInterval = time.Second
)

// Defaults returns a Config for a single local broker.
func Defaults() Config {
	return Config{
		Brokers:       []string{"127.0.0.1:9092"},
		Version:       "3.6.0",
		Partitions:    8,
		Replication:   1,
		FlushInterval: 2 * time.Millisecond,
		ClientID:      "inarious",
		Producer:      ProducerFranz,
	}
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka: no brokers configured")
	}
	v, err := sarama.ParseKafkaVersion(c.Version)
	if err != nil {
		return fmt.Errorf("kafka: version %q: %w", c.Version, err)
	}
	if !v.IsAtLeast(sarama.V2_1_0_0) {
		return fmt.Errorf("kafka: version %s is below 2.1, which Kafka 4 no longer accepts", c.Version)
	}
	if c.Partitions < 1 {
		return fmt.Errorf("kafka: partitions must be >= 1, got %d", c.Partitions)
	}
	if c.Replication < 1 {
		return fmt.Errorf("kafka: replication must be >= 1, got %d", c.Replication)
	}
	if c.MinInsyncReplicas < 0 || c.MinInsyncReplicas > c.Replication {
		return fmt.Errorf("kafka: min.insync.replicas must be 1..replication (%d), or 0 for the broker's default, got %d", c.Replication, c.MinInsyncReplicas)
	}
	if c.FlushInterval < 0 {
		return fmt.Errorf("kafka: flush interval must not be negative")
	}
	if c.Producer != "" && c.Producer != ProducerSarama && c.Producer != ProducerFranz {
		return fmt.Errorf("kafka: producer must be %s or %s, not %q", ProducerSarama, ProducerFranz, c.Producer)
	}
	return nil
}

// sarama keeps per-broker rates and histograms in go-metrics (a lock and an
// exponentially decaying sample per request); nothing in Inarious reads
// them, and under load they were 2.5 % of the one-command process's CPU.
func init() { metrics.UseNilMetrics = true }

// Sarama returns the client configuration: goka's defaults with the protocol
// version, client id and low-latency flushing set.
func (c Config) Sarama() *sarama.Config {
	sc := goka.DefaultConfig()
	if v, err := sarama.ParseKafkaVersion(c.Version); err == nil {
		sc.Version = v
	}
	sc.ClientID = c.ClientID
	// goka starts a new group at the newest offset, which silently skips
	// every event produced before the first worker joined. Count them all.
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	sc.Producer.Flush.Frequency = c.FlushInterval
	// A fetch returns as soon as one byte is there, so the wait bounds only
	// fetches that find nothing: long, so an idle process is quiet (fetch.go).
	sc.Consumer.MaxWaitTime = FetchWait
	sc.Consumer.Fetch.Min = 1
	sc.Metadata.RefreshFrequency = time.Minute
	sc.Consumer.Group.Session.Timeout = SessionTimeout
	sc.Consumer.Group.Heartbeat.Interval = HeartbeatInterval
	sc.Consumer.Group.Member.UserData = c.MemberUserData
	// The endpoints aggregator writes its partials in transactions: a
	// reader must not see those of an aborted one. Topics written without
	// transactions read the same either way.
	sc.Consumer.IsolationLevel = sarama.ReadCommitted
	return sc
}

// IdempotentProducer is Sarama() for the API's activity producer: acks from
// all in-sync replicas and Kafka's idempotent mode, so the producer's own
// retries never write an event twice.
func (c Config) IdempotentProducer() *sarama.Config {
	sc := c.Sarama()
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Idempotent = true
	sc.Net.MaxOpenRequests = 1 // sarama's requirement for idempotence
	sc.Producer.Retry.Max = 10
	sc.Producer.Retry.Backoff = 250 * time.Millisecond
	return sc
}

// TopicManagerConfig sets the replication of the topics goka creates.
func (c Config) TopicManagerConfig() *goka.TopicManagerConfig {
	tmc := goka.NewTopicManagerConfig()
	tmc.Table.Replication = c.Replication
	tmc.Stream.Replication = c.Replication
	// Activity events are kept a week; the counts live on in the compacted table.
	tmc.Stream.Retention = 7 * 24 * time.Hour
	return tmc
}

// TopicManagerBuilder builds goka topic managers with this configuration.
func (c Config) TopicManagerBuilder() goka.TopicManagerBuilder {
	return goka.TopicManagerBuilderWithConfig(c.Sarama(), c.TopicManagerConfig())
}

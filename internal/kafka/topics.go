package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/IBM/sarama"
)

// TopicSpec declares a topic a component reads or writes. Components return
// their specs as data; EnsureTopics creates what is missing.
type TopicSpec struct {
	Name string
	// Partitions; 0 means Config.Partitions (co-partitioned with Users).
	Partitions int
	// Compact keeps the last record per key (tables, changelogs).
	Compact bool
	// Retention drops records older than this; 0 keeps them forever. With
	// Compact it gives cleanup.policy=compact,delete: the last value per key
	// and nothing older than the retention.
	Retention time.Duration
	// CoPartitionedWith names a topic this one must match partition for
	// partition (goka requires a group's inputs to): when that topic
	// exists, its partition count wins over Partitions.
	CoPartitionedWith string
}

// Stream is a plain, time-retained topic.
func Stream(name string, retention time.Duration) TopicSpec {
	return TopicSpec{Name: name, Retention: retention}
}

// Table is a compacted changelog topic.
func Table(name string) TopicSpec { return TopicSpec{Name: name, Compact: true} }

func (s TopicSpec) detail(c Config) *sarama.TopicDetail {
	n := s.Partitions
	if n == 0 {
		n = c.Partitions
	}
	policy := "delete"
	switch {
	case s.Compact && s.Retention > 0:
		policy = "compact,delete"
	case s.Compact:
		policy = "compact"
	}
	entries := map[string]*string{"cleanup.policy": &policy}
	if s.Retention > 0 {
		ms := strconv.FormatInt(s.Retention.Milliseconds(), 10)
		entries["retention.ms"] = &ms
	} else if !s.Compact {
		forever := "-1"
		entries["retention.ms"] = &forever
	}
	if c.MinInsyncReplicas > 0 {
		isr := strconv.Itoa(c.MinInsyncReplicas)
		entries["min.insync.replicas"] = &isr
	}
	return &sarama.TopicDetail{NumPartitions: int32(n), ReplicationFactor: int16(c.Replication), ConfigEntries: entries}
}

// topicCreateTimeout bounds EnsureTopics while brokers are starting or a
// controller is busy with another process's creates.
const topicCreateTimeout = 60 * time.Second

// EnsureTopics creates the topics in specs that do not exist yet and waits
// until every one of them has a leader for each partition. It is safe to run
// from any number of processes at once: a topic another process created
// first counts as created, and transient broker errors are retried.
func (c Config) EnsureTopics(ctx context.Context, specs ...TopicSpec) error {
	if err := c.Validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, topicCreateTimeout)
	defer cancel()
	admin, err := retry(ctx, func() (sarama.ClusterAdmin, error) { return sarama.NewClusterAdmin(c.Brokers, c.Sarama()) })
	if err != nil {
		return fmt.Errorf("kafka: admin client: %w", err)
	}
	defer admin.Close()
	for _, s := range specs {
		_, err := retry(ctx, func() (struct{}, error) {
			detail := s.detail(c)
			if s.CoPartitionedWith != "" {
				if n, err := partitionsOf(admin, s.CoPartitionedWith); err == nil && n > 0 {
					detail.NumPartitions = int32(n)
				}
			}
			err := admin.CreateTopic(s.Name, detail, false)
			if errors.Is(err, sarama.ErrTopicAlreadyExists) {
				err = nil
			}
			if err == nil {
				err = ready(admin, s.Name)
			}
			return struct{}{}, err
		})
		if err != nil {
			return fmt.Errorf("kafka: ensure topic %s: %w", s.Name, err)
		}
	}
	return nil
}

// partitionsOf is topic's partition count, 0 when it does not exist.
func partitionsOf(admin sarama.ClusterAdmin, topic string) (int, error) {
	md, err := admin.DescribeTopics([]string{topic})
	if err != nil {
		return 0, err
	}
	if len(md) != 1 || !errors.Is(md[0].Err, sarama.ErrNoError) {
		return 0, nil
	}
	return len(md[0].Partitions), nil
}

// ready is nil once the topic's metadata shows a leader for every partition.
func ready(admin sarama.ClusterAdmin, topic string) error {
	md, err := admin.DescribeTopics([]string{topic})
	if err != nil {
		return err
	}
	if len(md) != 1 || !errors.Is(md[0].Err, sarama.ErrNoError) {
		if len(md) == 1 {
			return fmt.Errorf("not ready: %w", md[0].Err)
		}
		return errors.New("not ready: no metadata")
	}
	if len(md[0].Partitions) == 0 {
		return errors.New("not ready: no partitions yet")
	}
	for _, p := range md[0].Partitions {
		if p.Leader < 0 {
			return fmt.Errorf("not ready: partition %d has no leader", p.ID)
		}
	}
	return nil
}

// retry calls fn with backoff until it succeeds or ctx ends, returning the
// last error then.
func retry[T any](ctx context.Context, fn func() (T, error)) (T, error) {
	backoff := 50 * time.Millisecond
	for {
		v, err := fn()
		if err == nil || permanent(err) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}

// permanent errors would fail the same way on every retry.
func permanent(err error) bool {
	for _, kerr := range []sarama.KError{sarama.ErrInvalidReplicationFactor, sarama.ErrInvalidPartitions,
		sarama.ErrInvalidConfig, sarama.ErrPolicyViolation, sarama.ErrInvalidTopic, sarama.ErrTopicAuthorizationFailed} {
		if errors.Is(err, kerr) {
			return true
		}
	}
	return false
}

// TopicPartitions is the number of partitions topic has.
func (c Config) TopicPartitions(ctx context.Context, topic string) (int, error) {
	admin, err := retry(ctx, func() (sarama.ClusterAdmin, error) { return sarama.NewClusterAdmin(c.Brokers, c.Sarama()) })
	if err != nil {
		return 0, fmt.Errorf("kafka: admin client: %w", err)
	}
	defer admin.Close()
	md, err := admin.DescribeTopics([]string{topic})
	if err != nil {
		return 0, fmt.Errorf("kafka: describe %s: %w", topic, err)
	}
	if len(md) != 1 || !errors.Is(md[0].Err, sarama.ErrNoError) || len(md[0].Partitions) == 0 {
		return 0, fmt.Errorf("kafka: topic %s not found", topic)
	}
	return len(md[0].Partitions), nil
}

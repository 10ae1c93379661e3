package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/kafka/kafkatest"
)

// A group's inputs follow the partitions of the topic they are
// co-partitioned with when it already exists (created by someone else with
// another count), and Config.Partitions otherwise; windowed topics get
// compact,delete with their retention.
func TestEnsureTopicsCoPartitionsAndRetention(t *testing.T) {
	cfg := kafkatest.Config(t, 4)
	ctx := context.Background()
	if err := cfg.EnsureTopics(ctx, kafka.TopicSpec{Name: "users", Partitions: 6}); err != nil {
		t.Fatal(err)
	}
	err := cfg.EnsureTopics(ctx,
		kafka.TopicSpec{Name: "users"},
		kafka.TopicSpec{Name: "follows-users", CoPartitionedWith: "users"},
		kafka.TopicSpec{Name: "follows-nothing", CoPartitionedWith: "no-such-topic"},
		kafka.TopicSpec{Name: "windows", Compact: true, Retention: 48*time.Hour + time.Minute},
	)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"users": 6, "follows-users": 6, "follows-nothing": 4, "windows": 4}
	for topic, n := range want {
		got, err := cfg.TopicPartitions(ctx, topic)
		if err != nil || got != n {
			t.Errorf("%s: %d partitions (%v), want %d", topic, got, err, n)
		}
	}
	admin, err := sarama.NewClusterAdmin(cfg.Brokers, cfg.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: "windows"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range entries {
		got[e.Name] = e.Value
	}
	if got["cleanup.policy"] != "compact,delete" || got["retention.ms"] != "172860000" {
		t.Errorf("windows topic config: cleanup.policy=%q retention.ms=%q", got["cleanup.policy"], got["retention.ms"])
	}
}

// MinInsyncReplicas becomes the topic's min.insync.replicas; 0 sets none,
// so the broker's default applies.
func TestEnsureTopicsSetsMinInsyncReplicas(t *testing.T) {
	cfg := kafkatest.Config(t, 2)
	cfg.MinInsyncReplicas = 1
	ctx := context.Background()
	if err := cfg.EnsureTopics(ctx, kafka.Stream("with-isr", time.Hour), kafka.Table("table-with-isr")); err != nil {
		t.Fatal(err)
	}
	cfg.MinInsyncReplicas = 0
	if err := cfg.EnsureTopics(ctx, kafka.Stream("without-isr", time.Hour)); err != nil {
		t.Fatal(err)
	}
	admin, err := sarama.NewClusterAdmin(cfg.Brokers, cfg.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for topic, explicit := range map[string]bool{"with-isr": true, "table-with-isr": true, "without-isr": false} {
		entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
		if err != nil {
			t.Fatal(err)
		}
		var found *sarama.ConfigEntry
		for _, e := range entries {
			if e.Name == "min.insync.replicas" {
				found = &e
			}
		}
		switch {
		case explicit && (found == nil || found.Value != "1" || found.Default):
			t.Errorf("%s: min.insync.replicas = %+v, want 1 set on the topic", topic, found)
		case !explicit && found != nil && !found.Default && found.Source == sarama.SourceTopic:
			t.Errorf("%s: min.insync.replicas = %+v set on the topic, want the broker's default", topic, found)
		}
	}
}

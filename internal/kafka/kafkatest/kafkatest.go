// Package kafkatest sets up partitions, records and committed offsets on an
// in-process kfake broker for tests.
package kafkatest

import (
	"context"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/inarious/inarious/internal/embedkafka"
	"github.com/inarious/inarious/internal/kafka"
)

// Cluster is a one-broker kfake cluster with a client to arrange its state.
type Cluster struct {
	t  testing.TB
	cl *kgo.Client
	// Addrs are the broker addresses.
	Addrs []string
}

// Start runs a broker holding topic with partitions partitions, stopped when
// the test ends.
func Start(t testing.TB, topic string, partitions int32) *Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	// Kafka 3.6's request versions: commits then name topics, not topic ids.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MaxVersions(kversion.V3_6_0()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &Cluster{t: t, cl: cl, Addrs: c.ListenAddrs()}
}

// Produce writes n records to each of partitions.
func (c *Cluster) Produce(topic string, n int, partitions ...int32) {
	c.t.Helper()
	var recs []*kgo.Record
	for _, p := range partitions {
		for i := range n {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: p, Value: fmt.Append(nil, i)})
		}
	}
	if err := c.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		c.t.Fatal(err)
	}
}

// Commit commits offsets for group as a member-less (simple) consumer.
func (c *Cluster) Commit(group, topic string, offsets map[int32]int64) {
	c.t.Helper()
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group = group
	req.Generation = -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	for p, o := range offsets {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = p, o
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), c.cl)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				c.t.Fatalf("commit %s/%d: %v", rt.Topic, rp.Partition, err)
			}
		}
	}
}

// DeleteBefore deletes the records of topic's partition p below offset, as
// retention does: the log then starts at offset.
func (c *Cluster) DeleteBefore(topic string, p int32, offset int64) {
	c.t.Helper()
	req := kmsg.NewPtrDeleteRecordsRequest()
	rt := kmsg.NewDeleteRecordsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewDeleteRecordsRequestTopicPartition()
	rp.Partition, rp.Offset = p, offset
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 5000
	resp, err := req.RequestWith(context.Background(), c.cl)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				c.t.Fatalf("delete records %s/%d: %v", rt.Topic, rp.Partition, err)
			}
		}
	}
}

// Config starts an empty embedded broker, stopped when the test ends, and
// returns the Kafka settings to reach it with partitions as the default
// partition count of topics.
func Config(t testing.TB, partitions int) kafka.Config {
	t.Helper()
	b, err := embedkafka.Start(0, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	cfg := kafka.Defaults()
	cfg.Brokers = b.Addrs()
	cfg.Partitions = partitions
	return cfg
}

package procbench

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"

	"github.com/inarious/inarious/processors/dedupe"
	"github.com/inarious/inarious/processors/endpoints"
	"github.com/inarious/inarious/processors/usage"
)

// ResetTopics deletes every topic and group the benchmarks use on a real
// broker, so each run starts empty, and waits until the topics are gone.
func ResetTopics(ctx context.Context, brokers []string, version sarama.KafkaVersion) error {
	sc := sarama.NewConfig()
	sc.Version = version
	admin, err := sarama.NewClusterAdmin(brokers, sc)
	if err != nil {
		return err
	}
	defer admin.Close()
	topics := []string{string(goka.GroupTable(BaselineGroup))}
	for _, t := range slices.Concat(usage.Topics(), endpoints.Topics(), dedupe.New().Topics()) { // Users, the groups' tables, loop, windowed topics, …
		if !slices.Contains(topics, t.Name) {
			topics = append(topics, t.Name)
		}
	}
	for _, g := range []goka.Group{usage.Group, BaselineGroup, endpoints.Group, endpoints.AggregatorGroup, dedupe.Group} {
		if err := admin.DeleteConsumerGroup(string(g)); err != nil && !errors.Is(err, sarama.ErrGroupIDNotFound) {
			return fmt.Errorf("delete group %s: %w", g, err)
		}
	}
	for _, t := range topics {
		if err := admin.DeleteTopic(t); err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			return fmt.Errorf("delete topic %s: %w", t, err)
		}
	}
	return poll(ctx, func() bool {
		existing, err := admin.ListTopics()
		if err != nil {
			return false
		}
		return !slices.ContainsFunc(topics, func(t string) bool { _, ok := existing[t]; return ok })
	})
}

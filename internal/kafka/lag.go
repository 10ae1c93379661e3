package kafka

import (
	"errors"
	"fmt"

	"github.com/IBM/sarama"
)

// ConsumerLag returns, for each partition of topic, how many records group
// has yet to consume: the high-water mark minus the group's committed
// offset, as Kafka's own tools count it. Where the group has committed
// nothing, its members start from the oldest record (Inarious' groups are
// configured so), so the lag is every record still in the log: high-water
// mark minus log start offset, not minus 0, which counts deleted records.
//
// A partition whose offsets cannot be read is left out and its error joined
// into err; the others are still returned.
func ConsumerLag(client sarama.Client, admin sarama.ClusterAdmin, group, topic string) (map[int32]int64, error) {
	parts, err := client.Partitions(topic)
	if err != nil {
		return nil, fmt.Errorf("consumer lag: partitions of %s: %w", topic, err)
	}
	committed, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: parts})
	if errors.Is(err, sarama.ErrGroupIDNotFound) {
		// Apache Kafka answers -1 offsets for a group it has never seen;
		// kfake says the group does not exist. Both mean: nothing committed.
		committed, err = &sarama.OffsetFetchResponse{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("consumer lag: committed offsets of %s: %w", group, err)
	}
	lags := make(map[int32]int64, len(parts))
	var errs []error
	for _, p := range parts {
		hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			errs = append(errs, fmt.Errorf("consumer lag: high-water mark of %s/%d: %w", topic, p, err))
			continue
		}
		var pos int64
		if b := committed.GetBlock(topic, p); b != nil && b.Err != sarama.ErrNoError {
			errs = append(errs, fmt.Errorf("consumer lag: committed offset of %s on %s/%d: %w", group, topic, p, b.Err))
			continue
		} else if b != nil && b.Offset >= 0 {
			pos = b.Offset
		} else if pos, err = client.GetOffset(topic, p, sarama.OffsetOldest); err != nil {
			errs = append(errs, fmt.Errorf("consumer lag: log start of %s/%d: %w", topic, p, err))
			continue
		}
		lags[p] = max(hwm-pos, 0)
	}
	return lags, errors.Join(errs...)
}

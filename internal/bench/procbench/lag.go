package procbench

import (
	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/processors/usage"

	"fmt"

	"github.com/IBM/sarama"
)

// GroupLag is how many records of Users the usage group has not committed.
func GroupLag(brokers []string, version sarama.KafkaVersion) (int64, error) {
	sc := sarama.NewConfig()
	sc.Version = version
	client, err := sarama.NewClient(brokers, sc)
	if err != nil {
		return 0, err
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return 0, err
	}
	topic := string(codecs.ActivityTopic)
	parts, err := client.Partitions(topic)
	if err != nil {
		return 0, err
	}
	committed, err := admin.ListConsumerGroupOffsets(string(usage.Group), map[string][]int32{topic: parts})
	if err != nil {
		return 0, err
	}
	var lag int64
	for _, p := range parts {
		hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, err
		}
		off := int64(0)
		if b := committed.GetBlock(topic, p); b != nil && b.Offset >= 0 {
			off = b.Offset
		}
		lag += hwm - off
	}
	if lag < 0 {
		return 0, fmt.Errorf("negative lag %d", lag)
	}
	return lag, nil
}

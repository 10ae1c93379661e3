package procbench

import (
	"github.com/IBM/sarama"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/processors/usage"
)

// GroupLag is how many records of Users the usage group has not committed,
// summed over partitions as kafka.ConsumerLag counts them.
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
	lags, err := kafka.ConsumerLag(client, admin, string(usage.Group), string(codecs.ActivityTopic))
	if err != nil {
		return 0, err
	}
	var lag int64
	for _, l := range lags {
		lag += l
	}
	return lag, nil
}

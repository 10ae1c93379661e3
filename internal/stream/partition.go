package stream

import (
	"hash"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"

	"github.com/inarious/inarious/internal/windows"
)

// partitionKey is what places a record of topic: a windowed topic's record
// by its client (windows.PartitionKey), so a client's closed buckets sit in
// the partition that holds the client in Users and the usage table, where
// the worker owning the client joins them; any other record by its key.
func partitionKey(topic string, key []byte) []byte {
	if windows.IsTopic(topic) {
		return windows.PartitionKey(key)
	}
	return key
}

// SaramaProducerBuilder is goka.ProducerBuilderWithConfig, but places the
// records of windowed topics by their client (partitionKey).
func SaramaProducerBuilder(config *sarama.Config) goka.ProducerBuilder {
	return func(brokers []string, clientID string, hasher func() hash.Hash32) (goka.Producer, error) {
		config.ClientID = clientID
		config.Producer.Partitioner = saramaPartitioner(hasher)
		return goka.NewProducer(brokers, config)
	}
}

// saramaPartitioner is sarama's hash partitioner over goka's hasher, fed the
// partition key instead of the whole key for windowed topics.
func saramaPartitioner(hasher func() hash.Hash32) sarama.PartitionerConstructor {
	byHash := sarama.NewCustomHashPartitioner(hasher)
	return func(topic string) sarama.Partitioner {
		p := byHash(topic)
		if !windows.IsTopic(topic) {
			return p
		}
		return clientPartitioner{p}
	}
}

type clientPartitioner struct{ sarama.Partitioner }

func (c clientPartitioner) Partition(msg *sarama.ProducerMessage, n int32) (int32, error) {
	if msg.Key == nil {
		return c.Partitioner.Partition(msg, n)
	}
	key, err := msg.Key.Encode()
	if err != nil {
		return -1, err
	}
	// The hash partitioner reads only the key.
	return c.Partitioner.Partition(&sarama.ProducerMessage{Topic: msg.Topic, Key: sarama.ByteEncoder(partitionKey(msg.Topic, key))}, n)
}

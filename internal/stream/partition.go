package stream

import (
	"hash"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// KeyPlacer is implemented by a Group that places some topics' records by
// a part of their key (e.g. a windowed topic's records by their client, so
// they sit in the partition that holds the client): NewProcessor builds
// every producer of the group's processor with its PartitionKey.
type KeyPlacer interface {
	// PartitionKey returns, for topic, the function that gives the part of
	// a record's key that places it; nil when the whole key does.
	PartitionKey(topic string) func(key []byte) []byte
}

// Placement is a KeyPlacer's PartitionKey as the producer builders take it;
// a nil Placement places every record by its whole key.
type Placement func(topic string) func(key []byte) []byte

// of is topic's partition key function, nil for the whole key.
func (p Placement) of(topic string) func(key []byte) []byte {
	if p == nil {
		return nil
	}
	return p(topic)
}

// placementOf is g's Placement, nil unless g is a KeyPlacer.
func placementOf(g Group) Placement {
	if kp, ok := g.(KeyPlacer); ok {
		return kp.PartitionKey
	}
	return nil
}

// SaramaProducerBuilder is goka.ProducerBuilderWithConfig, but places the
// records of the topics place names by their partition key.
func SaramaProducerBuilder(config *sarama.Config, place Placement) goka.ProducerBuilder {
	return func(brokers []string, clientID string, hasher func() hash.Hash32) (goka.Producer, error) {
		config.ClientID = clientID
		config.Producer.Partitioner = saramaPartitioner(hasher, place)
		return goka.NewProducer(brokers, config)
	}
}

// saramaPartitioner is sarama's hash partitioner over goka's hasher, fed the
// partition key instead of the whole key for the topics place names.
func saramaPartitioner(hasher func() hash.Hash32, place Placement) sarama.PartitionerConstructor {
	byHash := sarama.NewCustomHashPartitioner(hasher)
	return func(topic string) sarama.Partitioner {
		p := byHash(topic)
		if key := place.of(topic); key != nil {
			return keyPartitioner{p, key}
		}
		return p
	}
}

type keyPartitioner struct {
	sarama.Partitioner
	key func([]byte) []byte
}

func (k keyPartitioner) Partition(msg *sarama.ProducerMessage, n int32) (int32, error) {
	if msg.Key == nil {
		return k.Partitioner.Partition(msg, n)
	}
	key, err := msg.Key.Encode()
	if err != nil {
		return -1, err
	}
	// The hash partitioner reads only the key.
	return k.Partitioner.Partition(&sarama.ProducerMessage{Topic: msg.Topic, Key: sarama.ByteEncoder(k.key(key))}, n)
}

package stream

import (
	"context"
	"hash"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/inarious/inarious/internal/kafka"
)

// franzProducer is a goka.Producer over a franz-go client: idempotent,
// acks from all in-sync replicas, records of a partition in order.
type franzProducer struct {
	cl *kgo.Client
}

// FranzProducerBuilder builds goka producers over franz-go, lingering at most
// linger per batch. Records are partitioned with goka's hasher exactly as
// sarama's hash partitioner does, so tables and views agree on placement;
// the records of the topics place names by their partition key, as
// SaramaProducerBuilder does. opts come last and may override the defaults
// (e.g. compression).
func FranzProducerBuilder(linger time.Duration, place Placement, opts ...kgo.Opt) goka.ProducerBuilder {
	return func(brokers []string, clientID string, hasher func() hash.Hash32) (goka.Producer, error) {
		cl, err := kgo.NewClient(kafka.FranzProducerOpts(brokers, clientID, linger, hasher, place, opts...)...)
		if err != nil {
			return nil, err
		}
		return &franzProducer{cl: cl}, nil
	}
}

func (p *franzProducer) Emit(topic, key string, value []byte) *goka.Promise {
	return p.EmitWithHeaders(topic, key, value, nil)
}

func (p *franzProducer) EmitWithHeaders(topic, key string, value []byte, headers goka.Headers) *goka.Promise {
	promise, finish := goka.NewPromiseWithFinisher()
	r := &kgo.Record{Topic: topic, Key: []byte(key), Value: value}
	for k, v := range headers {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: v})
	}
	p.cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
		if err != nil {
			finish(nil, err)
			return
		}
		// goka reads the offset of a table write to mark its local storage.
		finish(&sarama.ProducerMessage{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp}, nil)
	})
	return promise
}

// Close waits for outstanding records, then closes the client (which fails
// whatever is still buffered, finishing every promise).
func (p *franzProducer) Close() error { return kafka.FlushAndClose(p.cl) }

package stream

import (
	"context"
	"hash"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// franzProducer is a goka.Producer over a franz-go client: idempotent,
// acks from all in-sync replicas, records of a partition in order.
type franzProducer struct {
	cl *kgo.Client
}

// franzCloseTimeout is how long Close waits for outstanding records, as
// goka's sarama producer does.
const franzCloseTimeout = 60 * time.Second

// FranzProducerBuilder builds goka producers over franz-go, lingering at most
// linger per batch. Records are partitioned with goka's hasher exactly as
// sarama's hash partitioner does, so tables and views agree on placement;
// windowed topics' records by their client, as SaramaProducerBuilder does.
// opts come last and may override the defaults (e.g. compression).
func FranzProducerBuilder(linger time.Duration, opts ...kgo.Opt) goka.ProducerBuilder {
	return func(brokers []string, clientID string, hasher func() hash.Hash32) (goka.Producer, error) {
		cl, err := kgo.NewClient(append([]kgo.Opt{
			kgo.SeedBrokers(brokers...),
			kgo.ClientID(clientID),
			kgo.RequiredAcks(kgo.AllISRAcks()), // the default, stated: idempotence needs it
			kgo.ProducerLinger(linger),
			kgo.MaxBufferedRecords(1 << 16),
			// Fail instead of retrying forever, so a processor whose broker
			// went away stops and stream.Run rebuilds it.
			kgo.RecordDeliveryTimeout(30 * time.Second),
			kgo.RecordPartitioner(kgo.BasicConsistentPartitioner(func(topic string) func(*kgo.Record, int) int {
				var mu sync.Mutex
				h := hasher()
				return func(r *kgo.Record, n int) int {
					mu.Lock()
					defer mu.Unlock()
					h.Reset()
					_, _ = h.Write(partitionKey(topic, r.Key))
					// sarama's hashPartitioner: |int32(sum) % n|.
					p := int32(h.Sum32()) % int32(n)
					if p < 0 {
						p = -p
					}
					return int(p)
				}
			})),
		}, opts...)...)
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
func (p *franzProducer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), franzCloseTimeout)
	defer cancel()
	err := p.cl.Flush(ctx)
	p.cl.Close()
	return err
}

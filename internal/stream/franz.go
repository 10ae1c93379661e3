package stream

import (
	"context"
	"fmt"
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
// the records of the topics place names by their partition key, as
// SaramaProducerBuilder does. opts come last and may override the defaults
// (e.g. compression).
func FranzProducerBuilder(linger time.Duration, place Placement, opts ...kgo.Opt) goka.ProducerBuilder {
	return func(brokers []string, clientID string, hasher func() hash.Hash32) (goka.Producer, error) {
		cl, err := kgo.NewClient(franzOpts(brokers, clientID, linger, hasher, place, opts)...)
		if err != nil {
			return nil, err
		}
		return &franzProducer{cl: cl}, nil
	}
}

// franzOpts are the client options of every franz-go producer here; opts
// come last and may override them.
func franzOpts(brokers []string, clientID string, linger time.Duration, hasher func() hash.Hash32, place Placement, opts []kgo.Opt) []kgo.Opt {
	return append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ClientID(clientID),
		kgo.RequiredAcks(kgo.AllISRAcks()), // the default, stated: idempotence needs it
		kgo.ProducerLinger(linger),
		kgo.MaxBufferedRecords(1 << 16),
		// Fail instead of retrying forever, so a processor whose broker
		// went away stops and stream.Run rebuilds it.
		kgo.RecordDeliveryTimeout(30 * time.Second),
		kgo.RecordPartitioner(hashPartitioner(hasher, place)),
	}, opts...)
}

// hashPartitioner places records as sarama's hash partitioner does over
// goka's hasher, by their partition key (place).
func hashPartitioner(hasher func() hash.Hash32, place Placement) kgo.Partitioner {
	return kgo.BasicConsistentPartitioner(func(topic string) func(*kgo.Record, int) int {
		var mu sync.Mutex
		h := hasher()
		partitionKey := place.of(topic)
		return func(r *kgo.Record, n int) int {
			mu.Lock()
			defer mu.Unlock()
			h.Reset()
			key := r.Key
			if partitionKey != nil {
				key = partitionKey(key)
			}
			_, _ = h.Write(key)
			// sarama's hashPartitioner: |int32(sum) % n|.
			p := int32(h.Sum32()) % int32(n)
			if p < 0 {
				p = -p
			}
			return int(p)
		}
	})
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
func (p *franzProducer) Close() error { return flushAndClose(p.cl) }

// FranzEmitter produces one topic's records on a franz-go client: a
// message's encoding goes straight to kgo.Produce, without goka's emitter
// and promises, which cost the API a good part of its time per request.
// Its client is configured as FranzProducerBuilder's.
type FranzEmitter struct {
	cl    *kgo.Client
	topic string
	codec goka.Codec
}

// NewFranzEmitter produces to topic, encoding messages with codec and
// placing them by hasher as goka's emitter with that hasher would.
func NewFranzEmitter(brokers []string, clientID string, topic goka.Stream, codec goka.Codec, hasher func() hash.Hash32, linger time.Duration, opts ...kgo.Opt) (*FranzEmitter, error) {
	cl, err := kgo.NewClient(franzOpts(brokers, clientID, linger, hasher, nil, opts)...)
	if err != nil {
		return nil, err
	}
	return &FranzEmitter{cl: cl, topic: string(topic), codec: codec}, nil
}

// Produce encodes msg and produces it under key. Unless it returns an
// error, done is called once with msg and the outcome of the delivery.
func (e *FranzEmitter) Produce(key string, msg any, done func(msg any, err error)) error {
	value, err := e.codec.Encode(msg)
	if err != nil {
		return fmt.Errorf("encoding value for key %s in topic %s: %w", key, e.topic, err)
	}
	e.cl.Produce(context.Background(), &kgo.Record{Topic: e.topic, Key: []byte(key), Value: value}, func(_ *kgo.Record, err error) {
		done(msg, err)
	})
	return nil
}

// Close waits for outstanding records, then closes the client (which fails
// whatever is still buffered, calling every done).
func (e *FranzEmitter) Close() error { return flushAndClose(e.cl) }

// flushAndClose waits up to franzCloseTimeout for cl's outstanding records,
// then closes it, which fails whatever is still buffered.
func flushAndClose(cl *kgo.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), franzCloseTimeout)
	defer cancel()
	err := cl.Flush(ctx)
	cl.Close()
	return err
}

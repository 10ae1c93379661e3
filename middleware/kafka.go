package middleware

import (
	"context"
	"fmt"
	"time"

	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/kafka"
)

// KafkaTransport produces events straight to Inarious' activity topic
// with franz-go: keyed by client, placed by Kafka's murmur2 partitioner
// (as Java clients and Inarious' tables do), acks from all in-sync
// replicas, idempotent, protobuf-encoded (codecs.Activity). It is what
// Inarious' own API produces its events with. An event's encoding goes
// straight to kgo.Produce, without goka's emitter and promises, which cost
// a good part of a request's time.
type KafkaTransport struct {
	cl    *kgo.Client
	topic string
	codec goka.Codec
}

// KafkaOption configures NewKafkaTransport.
type KafkaOption func(*kafkaConfig)

type kafkaConfig struct {
	clientID string
	topic    goka.Stream
	linger   time.Duration
	codec    goka.Codec
	opts     []kgo.Opt
}

// KafkaClientID names the producer in broker logs (default "inarious-middleware").
func KafkaClientID(id string) KafkaOption { return func(c *kafkaConfig) { c.clientID = id } }

// KafkaTopic is where events go (default codecs.ActivityTopic, "Users").
func KafkaTopic(topic string) KafkaOption {
	return func(c *kafkaConfig) { c.topic = goka.Stream(topic) }
}

// KafkaLinger bounds how long an event waits to be batched (default 2 ms).
func KafkaLinger(d time.Duration) KafkaOption { return func(c *kafkaConfig) { c.linger = d } }

// KafkaCodec encodes the events, e.g. a confluent.Registrar's codec, which
// frames each record with the registered schema's id (then hold the buffer
// with HoldUntil(registrar.Registered())). Default codecs.Activity.
func KafkaCodec(codec goka.Codec) KafkaOption { return func(c *kafkaConfig) { c.codec = codec } }

// KafkaClientOpts are further franz-go options (TLS, SASL, compression),
// applied after the transport's own.
func KafkaClientOpts(opts ...kgo.Opt) KafkaOption {
	return func(c *kafkaConfig) { c.opts = append(c.opts, opts...) }
}

// NewKafkaTransport produces to brokers. Events are sent uncompressed
// unless KafkaClientOpts says otherwise: they are small, and a broker
// validating compressed batches decompresses them, which costs it more
// than the bytes save.
func NewKafkaTransport(brokers []string, opts ...KafkaOption) (*KafkaTransport, error) {
	c := kafkaConfig{clientID: "inarious-middleware", topic: codecs.ActivityTopic, linger: 2 * time.Millisecond, codec: new(codecs.Activity)}
	for _, opt := range opts {
		opt(&c)
	}
	kopts := append([]kgo.Opt{kgo.ProducerBatchCompression(kgo.NoCompression())}, c.opts...)
	cl, err := kgo.NewClient(kafka.FranzProducerOpts(brokers, c.clientID, c.linger, kafka.Hasher, nil, kopts...)...)
	if err != nil {
		return nil, err
	}
	return &KafkaTransport{cl: cl, topic: string(c.topic), codec: c.codec}, nil
}

// Produce encodes msg and produces it under key. Unless it returns an
// error, done is called once with msg and the outcome of the delivery.
func (t *KafkaTransport) Produce(key string, msg any, done func(msg any, err error)) error {
	value, err := t.codec.Encode(msg)
	if err != nil {
		return fmt.Errorf("encoding value for key %s in topic %s: %w", key, t.topic, err)
	}
	t.cl.Produce(context.Background(), &kgo.Record{Topic: t.topic, Key: []byte(key), Value: value}, func(_ *kgo.Record, err error) {
		done(msg, err)
	})
	return nil
}

// Close waits for outstanding records (up to a minute), then closes the
// client, which fails whatever is still buffered, calling every done.
func (t *KafkaTransport) Close() error { return kafka.FlushAndClose(t.cl) }

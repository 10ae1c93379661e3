package kafka

import (
	"context"
	"hash"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// FranzProducerOpts are the client options of every franz-go producer of
// Inarious (the processors' and the activity events'): idempotent (franz-go's
// default), acks from all in-sync replicas, records placed by hasher as
// sarama's hash partitioner places them, by the partition key partitionKey
// gives a topic (nil, or a nil func, for the whole key). opts come last and
// may override the defaults (e.g. compression).
func FranzProducerOpts(brokers []string, clientID string, linger time.Duration, hasher func() hash.Hash32, partitionKey func(topic string) func(key []byte) []byte, opts ...kgo.Opt) []kgo.Opt {
	return append([]kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ClientID(clientID),
		kgo.RequiredAcks(kgo.AllISRAcks()), // the default, stated: idempotence needs it
		kgo.ProducerLinger(linger),
		kgo.MaxBufferedRecords(1 << 16),
		// Fail instead of retrying forever, so a processor whose broker
		// went away stops and stream.Run rebuilds it, and the activity
		// buffer keeps the event for a later try.
		kgo.RecordDeliveryTimeout(30 * time.Second),
		kgo.RecordPartitioner(hashPartitioner(hasher, partitionKey)),
	}, opts...)
}

// hashPartitioner places records as sarama's hash partitioner does over
// hasher, by their partition key.
func hashPartitioner(hasher func() hash.Hash32, partitionKeyOf func(topic string) func(key []byte) []byte) kgo.Partitioner {
	return kgo.BasicConsistentPartitioner(func(topic string) func(*kgo.Record, int) int {
		var mu sync.Mutex
		h := hasher()
		var partitionKey func([]byte) []byte
		if partitionKeyOf != nil {
			partitionKey = partitionKeyOf(topic)
		}
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

// FlushAndClose waits up to a minute (as goka's sarama producer does) for
// cl's outstanding records, then closes it, which fails whatever is still
// buffered.
func FlushAndClose(cl *kgo.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), franzCloseTimeout)
	defer cancel()
	err := cl.Flush(ctx)
	cl.Close()
	return err
}

// franzCloseTimeout is how long FlushAndClose waits for outstanding records.
const franzCloseTimeout = 60 * time.Second

package kafka_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/inarious/inarious/internal/kafka"
)

// gokaPartition is how goka and sarama's hash partitioner map a hash.
func gokaPartition(key string, n int32) int32 {
	h := kafka.Hasher()
	_, _ = h.Write([]byte(key))
	p := int32(h.Sum32()) % n
	if p < 0 {
		p = -p
	}
	return p
}

// Keys must land where a standard Kafka producer puts them; franz-go's
// default partitioner is the Kafka-compatible reference here.
func TestHasherMatchesKafkaDefaultPartitioner(t *testing.T) {
	ref := kgo.StickyKeyPartitioner(nil).ForTopic("Users")
	for _, n := range []int32{1, 3, 6, 8, 12, 64} {
		for i := 0; i < 2000; i++ {
			key := fmt.Sprintf("198.51.%d.%d", i/256, i%256)
			if i%7 == 0 {
				key = fmt.Sprintf("client-%x-with-a-longer-name", i*7919)
			}
			want := int32(ref.Partition(&kgo.Record{Key: []byte(key)}, int(n)))
			if got := gokaPartition(key, n); got != want {
				t.Fatalf("key %q, %d partitions: got %d, Kafka puts it in %d", key, n, got, want)
			}
		}
	}
}

func TestHasherResetAndSum(t *testing.T) {
	h := kafka.Hasher()
	_, _ = h.Write([]byte("abc"))
	first := h.Sum32()
	h.Reset()
	_, _ = h.Write([]byte("a"))
	_, _ = h.Write([]byte("bc"))
	if h.Sum32() != first {
		t.Error("split writes hash differently")
	}
	if b := h.Sum(nil); len(b) != 4 || h.Size() != 4 {
		t.Errorf("Sum = %x", b)
	}
}

// PartitionHasher places a key as Hasher places the key's partition key.
func TestPartitionHasherHashesThePartitionKey(t *testing.T) {
	clientPart := func(k []byte) []byte { return bytes.SplitN(k, []byte{0}, 2)[0] }
	for _, key := range []string{"", "10.0.0.1", "10.0.0.1\x00000000000060", "GET /users/{id}\x00x\x00y"} {
		h, want := kafka.PartitionHasher(clientPart), kafka.Hasher()
		_, _ = h.Write([]byte(key))
		_, _ = want.Write(clientPart([]byte(key)))
		if h.Sum32() != want.Sum32() || !bytes.Equal(h.Sum(nil), want.Sum(nil)) {
			t.Errorf("%q: %d, want %d (of %q)", key, h.Sum32(), want.Sum32(), clientPart([]byte(key)))
		}
		h.Reset()
		if h.Sum32() != kafka.PartitionHasher(clientPart).Sum32() {
			t.Errorf("%q: Reset did not empty the hasher", key)
		}
	}
}

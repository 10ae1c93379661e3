package stream

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/kafka/kafkatest"
)

// The franz-go producer places keys where goka's hasher (Kafka's murmur2)
// does, keeps a partition's records in order, and finishes each promise with
// the record's offset (goka marks its local table with it).
func TestFranzProducerPartitionsOrdersAndReportsOffsets(t *testing.T) {
	const topic, partitions = "t", 4
	c := kafkatest.Start(t, topic, partitions)
	p, err := FranzProducerBuilder(time.Millisecond, nil)(c.Addrs, "test", kafka.Hasher)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	type ack struct {
		key       string
		partition int32
		offset    int64
		err       error
	}
	var mu sync.Mutex
	var acks []ack
	var wg sync.WaitGroup
	for i := range n {
		key := fmt.Sprintf("client-%d", i%17)
		wg.Add(1)
		p.Emit(topic, key, []byte(fmt.Sprint(i))).ThenWithMessage(func(msg *sarama.ProducerMessage, err error) {
			defer wg.Done()
			a := ack{key: key, err: err}
			if msg != nil {
				a.partition, a.offset = msg.Partition, msg.Offset
			}
			mu.Lock()
			acks = append(acks, a)
			mu.Unlock()
		})
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if len(acks) != n {
		t.Fatalf("%d promises finished, want %d", len(acks), n)
	}
	next := map[int32]int64{}
	for _, a := range acks {
		if a.err != nil {
			t.Fatalf("record of %s failed: %v", a.key, a.err)
		}
		if want := kafka.PartitionOf(a.key, partitions); a.partition != want {
			t.Errorf("key %s went to partition %d, want %d", a.key, a.partition, want)
		}
		// Acknowledged in order within a partition, offsets without gaps.
		if a.offset != next[a.partition] {
			t.Errorf("partition %d: offset %d acknowledged, want %d", a.partition, a.offset, next[a.partition])
		}
		next[a.partition] = a.offset + 1
	}
}

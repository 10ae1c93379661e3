package stream

import (
	"fmt"
	"sync"
	"testing"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"

	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/kafka/kafkatest"
	"github.com/inarious/inarious/internal/windows"
)

// Every producer a worker can use (sarama's, franz-go's, each behind the
// coalescer of the group table) places a windowed topic's record in its
// client's partition, not where its whole key would go.
func TestProducersPlaceWindowedRecordsByClient(t *testing.T) {
	const partitions = 8
	topic := windows.Topic(60e9)
	c := kafkatest.Start(t, topic, partitions)
	graph := goka.DefineGroup("g",
		goka.Input("in", new(codec.Bytes), func(goka.Context, any) {}),
		goka.Persist(new(codec.Int64)),
	)
	clients := make([]string, 40)
	moved := 0
	for i := range clients {
		clients[i] = fmt.Sprintf("198.51.100.%d", i)
		if kafka.PartitionOf(windows.Key(clients[i], 1700000000), partitions) != kafka.PartitionOf(clients[i], partitions) {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("whole keys land where their clients do: the test proves nothing")
	}
	for _, producer := range []string{kafka.ProducerSarama, kafka.ProducerFranz} {
		t.Run(producer, func(t *testing.T) {
			cfg := kafka.Defaults()
			cfg.Brokers = c.Addrs
			cfg.Producer = producer
			p, err := producerBuilder(cfg, graph)(cfg.Brokers, "test", kafka.Hasher)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := p.(*Coalescer); !ok {
				t.Fatalf("producer %T, want the coalescer in front", p)
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			got := map[string]int32{}
			for _, client := range clients {
				key := windows.Key(client, 1700000000)
				wg.Add(1)
				p.Emit(topic, key, []byte("v")).ThenWithMessage(func(msg *sarama.ProducerMessage, err error) {
					defer wg.Done()
					if err != nil {
						t.Errorf("%q: %v", key, err)
						return
					}
					mu.Lock()
					got[client] = msg.Partition
					mu.Unlock()
				})
			}
			wg.Wait()
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			for _, client := range clients {
				if want := kafka.PartitionOf(client, partitions); got[client] != want {
					t.Errorf("%s's bucket went to partition %d, the client's is %d", client, got[client], want)
				}
			}
		})
	}
}

package stream

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"

	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/kafka/kafkatest"
)

// placedGroup places the records of its topic "placed" by the part of their
// key before the first NUL (as the usage group places windowed buckets by
// client), other records by their whole key.
type placedGroup struct{ graph *goka.GroupGraph }

func (g placedGroup) Graph() *goka.GroupGraph  { return g.graph }
func (placedGroup) Rebalanced(goka.Assignment) {}
func (placedGroup) PartitionKey(topic string) func([]byte) []byte {
	if topic != "placed" {
		return nil
	}
	return func(key []byte) []byte {
		if i := bytes.IndexByte(key, 0); i >= 0 {
			return key[:i]
		}
		return key
	}
}

// Every producer a worker can use (sarama's, franz-go's, each behind the
// coalescer of the group table) places the records of a topic its group's
// KeyPlacer names by their partition key, not where the whole key would go.
func TestProducersPlaceRecordsByTheGroupsPartitionKey(t *testing.T) {
	const partitions, topic = 8, "placed"
	c := kafkatest.Start(t, topic, partitions)
	g := placedGroup{goka.DefineGroup("g",
		goka.Input("in", new(codec.Bytes), func(goka.Context, any) {}),
		goka.Persist(new(codec.Int64)),
	)}
	clients := make([]string, 40)
	key := func(client string) string { return client + "\x00" + "1700000000" }
	moved := 0
	for i := range clients {
		clients[i] = fmt.Sprintf("198.51.100.%d", i)
		if kafka.PartitionOf(key(clients[i]), partitions) != kafka.PartitionOf(clients[i], partitions) {
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
			p, err := producerBuilder(cfg, g.Graph(), placementOf(g))(cfg.Brokers, "test", kafka.Hasher)
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
				wg.Add(1)
				p.Emit(topic, key(client), []byte("v")).ThenWithMessage(func(msg *sarama.ProducerMessage, err error) {
					defer wg.Done()
					if err != nil {
						t.Errorf("%q: %v", key(client), err)
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
					t.Errorf("%s's record went to partition %d, the client's is %d", client, got[client], want)
				}
			}
		})
	}
}

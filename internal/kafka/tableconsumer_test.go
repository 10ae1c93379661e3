package kafka_test

import (
	"context"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"

	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/kafka/kafkatest"
)

// longWait is a fetch wait far longer than anything a test waits for.
const longWait = 5 * time.Second

// longWaitConfig is Sarama() with longWait.
func longWaitConfig(brokers []string) *sarama.Config {
	cfg := kafka.Defaults()
	cfg.Brokers = brokers
	sc := cfg.Sarama()
	sc.Consumer.MaxWaitTime = longWait
	return sc
}

// A table consumer's partition consumer closes at once, although sarama lets
// the partition go only when the broker answers the (idle, long) fetch in
// flight; the partition can be consumed again.
func TestTableConsumerClosesAtOnce(t *testing.T) {
	c := kafkatest.Start(t, "t", 1)
	cons, err := kafka.TableConsumerBuilder(longWaitConfig(c.Addrs))(c.Addrs, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	c.Produce("t", 1, 0)
	pc, err := cons.ConsumePartition("t", 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	receive(t, pc, 0)
	time.Sleep(300 * time.Millisecond) // the next fetch waits at the broker

	start := time.Now()
	pc.AsyncClose()
	for range pc.Errors() {
	}
	for range pc.Messages() {
	}
	if took := time.Since(start); took > longWait/2 {
		t.Errorf("close and drain took %v; they must not wait for the fetch", took)
	}

	c.Produce("t", 1, 0) // answers the fetch, so sarama lets the partition go
	again, err := cons.ConsumePartition("t", 0, 1)
	if err != nil {
		t.Fatalf("consuming the partition again: %v", err)
	}
	defer again.Close()
	receive(t, again, 1)
}

func receive(t *testing.T, pc sarama.PartitionConsumer, offset int64) {
	t.Helper()
	select {
	case m := <-pc.Messages():
		if m.Offset != offset {
			t.Fatalf("offset %d, want %d", m.Offset, offset)
		}
	case err := <-pc.Errors():
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatalf("offset %d never arrived", offset)
	}
}

// goka's recoveries consume with the short wait, its catch-ups (what stays)
// with the long one. The recovery is told by goka's method on the stack.
func TestRecoveriesUseTheShortWait(t *testing.T) {
	m := reflect.ValueOf((*goka.PartitionTable).SetupAndRecover).Pointer()
	if name := runtime.FuncForPC(m).Name(); name != kafka.RecoverySubscriber {
		t.Fatalf("goka's recovery is %s, the table consumer looks for %s", name, kafka.RecoverySubscriber)
	}

	const partitions = 4
	c := kafkatest.Start(t, "table", partitions)
	c.Produce("table", 5, 0, 1, 2, 3)
	cfg := kafka.Defaults()
	cfg.Brokers = c.Addrs
	build := kafka.TableConsumerBuilder(longWaitConfig(c.Addrs))
	var cons sarama.Consumer
	v, err := goka.NewView(c.Addrs, "table", new(codec.String),
		goka.WithViewStorageBuilder(storage.MemoryBuilder()),
		goka.WithViewTopicManagerBuilder(cfg.TopicManagerBuilder()),
		goka.WithViewConsumerSaramaBuilder(func(brokers []string, clientID string) (sarama.Consumer, error) {
			var err error
			cons, err = build(brokers, clientID)
			return cons, err
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		live, recovery, built := kafka.TablePartitions(cons)
		if v.CurrentState() == goka.ViewStateRunning && live == partitions && recovery == 0 {
			if !built {
				t.Fatal("the view recovered without the recovery consumer")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("view %v; live consumer holds %d partitions, recovery %d (built %v); want %d, 0, true",
				v.CurrentState(), live, recovery, built, partitions)
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > longWait/2 {
		t.Errorf("the view took %v to stop; its consumers must not wait for their fetches", took)
	}
}

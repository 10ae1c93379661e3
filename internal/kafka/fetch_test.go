package kafka_test

import (
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/kafka/kafkatest"
)

// A fetch that may wait long for data still answers as soon as a record is
// produced (Fetch.Min is one byte): a long FetchWait costs no freshness.
func TestLongFetchWaitAnswersAtTheFirstRecord(t *testing.T) {
	c := kafkatest.Start(t, "t", 2)
	cfg := kafka.Defaults()
	cfg.Brokers = c.Addrs
	sc := cfg.Sarama()
	if sc.Consumer.MaxWaitTime != kafka.FetchWait || sc.Consumer.Fetch.Min != 1 {
		t.Fatalf("fetch wait %v, min %d bytes; want %v, 1", sc.Consumer.MaxWaitTime, sc.Consumer.Fetch.Min, kafka.FetchWait)
	}
	// Longer still, so that a fetch waiting it out cannot pass for one
	// answered early however slow the machine.
	sc.Consumer.MaxWaitTime = 5 * time.Second
	cons, err := sarama.NewConsumer(c.Addrs, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	// Two partitions in one fetch; records go to the second only.
	var pcs []sarama.PartitionConsumer
	for p := range int32(2) {
		pc, err := cons.ConsumePartition("t", p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		pcs = append(pcs, pc) // closed with cons, whose client's close ends the fetch in flight
	}
	for i := range 3 {
		time.Sleep(300 * time.Millisecond) // the consumer's fetch now waits at the broker
		start := time.Now()
		c.Produce("t", 1, 1)
		select {
		case m := <-pcs[1].Messages():
			if took := time.Since(start); took > sc.Consumer.MaxWaitTime/2 {
				t.Errorf("record %d (offset %d) arrived %v after it was produced; the fetch must not wait out its %v", i, m.Offset, took, sc.Consumer.MaxWaitTime)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("record %d never arrived", i)
		}
	}
}

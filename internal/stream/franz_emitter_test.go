package stream

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lovoo/goka/codec"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/kafka/kafkatest"
	"github.com/inarious/inarious/internal/testutil"
)

// doneLog records the calls of a FranzEmitter's done.
type doneLog struct {
	mu    sync.Mutex
	calls map[any]int
	errs  []error
}

func (d *doneLog) done(msg any, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.calls == nil {
		d.calls = map[any]int{}
	}
	d.calls[msg]++
	if err != nil {
		d.errs = append(d.errs, err)
	}
}

func (d *doneLog) snapshot() (calls map[any]int, errs []error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	calls = map[any]int{}
	for k, v := range d.calls {
		calls[k] = v
	}
	return calls, append([]error(nil), d.errs...)
}

// The emitter encodes with its codec, places keys where goka's hasher
// (Kafka's murmur2) does, keeps a partition's records in order, and calls
// done once per message with that message.
func TestFranzEmitterEncodesPartitionsAndOrders(t *testing.T) {
	const topic, partitions = "t", 4
	c := kafkatest.Start(t, topic, partitions)
	em, err := NewFranzEmitter(c.Addrs, "test", topic, new(codec.String), kafka.Hasher, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	var log doneLog
	for i := range n {
		if err := em.Produce(fmt.Sprintf("client-%d", i%17), strconv.Itoa(i), log.done); err != nil {
			t.Fatal(err)
		}
	}
	if err := em.Close(); err != nil {
		t.Fatal(err)
	}
	calls, errs := log.snapshot()
	if len(errs) != 0 {
		t.Fatalf("deliveries failed: %v", errs)
	}
	for i := range n {
		if got := calls[strconv.Itoa(i)]; got != 1 {
			t.Fatalf("done called %d times for message %d, want once", got, i)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	last := map[string]int{} // per key: the last message read
	testutil.ReadTopic(ctx, t, c.Addrs, topic, n, func(r *kgo.Record) {
		key := string(r.Key)
		if want := kafka.PartitionOf(key, partitions); r.Partition != want {
			t.Errorf("key %s went to partition %d, want %d", key, r.Partition, want)
		}
		i, err := strconv.Atoi(string(r.Value))
		if err != nil || fmt.Sprintf("client-%d", i%17) != key {
			t.Fatalf("record %q under key %s: not a message produced under it", r.Value, key)
		}
		if prev, ok := last[key]; ok && i <= prev {
			t.Errorf("key %s: message %d read after %d", key, i, prev)
		}
		last[key] = i
	})
}

// A message the codec cannot encode is refused at once, and done is not
// called for it.
func TestFranzEmitterRefusesWhatItCannotEncode(t *testing.T) {
	c := kafkatest.Start(t, "t", 1)
	em, err := NewFranzEmitter(c.Addrs, "test", "t", new(codec.String), kafka.Hasher, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	var log doneLog
	if err := em.Produce("k", 42, log.done); err == nil {
		t.Error("an int was produced with a string codec")
	}
	if err := em.Close(); err != nil {
		t.Fatal(err)
	}
	if calls, _ := log.snapshot(); len(calls) != 0 {
		t.Errorf("done called for a refused message: %v", calls)
	}
}

// With no broker, the delivery fails within the record delivery timeout:
// done reports it, so the publisher can keep the event for later.
func TestFranzEmitterReportsUndeliveredRecords(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	addrs := cluster.ListenAddrs()
	cluster.Close()
	em, err := NewFranzEmitter(addrs, "test", "t", new(codec.String), kafka.Hasher, time.Millisecond,
		kgo.RecordDeliveryTimeout(time.Second)) // kgo's least
	if err != nil {
		t.Fatal(err)
	}
	failed := make(chan error, 1)
	if err := em.Produce("k", "v", func(msg any, err error) {
		if msg != "v" {
			err = fmt.Errorf("done called with %v, not the message produced", msg)
		}
		failed <- err
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-failed:
		if err == nil {
			t.Error("delivered with no broker")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("done not called 30 s after a 1 s delivery timeout")
	}
	// Close after the failure: nothing is left to flush.
	if err := em.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
}

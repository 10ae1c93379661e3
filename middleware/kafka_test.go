package middleware_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lovoo/goka/codec"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/kafka/kafkatest"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/middleware"
)

// Over the Kafka transport (the API's producer), events the producer gives
// up on while the broker is unreachable are kept, and delivered once each
// when it is back, keyed by their client and placed by murmur2 as Kafka's
// Java client places them.
func TestKafkaTransportDeliversAfterOutage(t *testing.T) {
	const partitions = 4
	port := testutil.FreePort(t)
	addrs := []string{fmt.Sprintf("127.0.0.1:%d", port)}
	prod, err := middleware.NewKafkaTransport(addrs, middleware.KafkaLinger(time.Millisecond),
		middleware.KafkaClientOpts(kgo.RecordDeliveryTimeout(time.Second))) // kgo's least: the outage is short
	if err != nil {
		t.Fatal(err)
	}
	buf := middleware.NewBuffer(prod, 64, middleware.WithLogger(slog.New(slog.DiscardHandler)))
	const n = 20
	for i := range n {
		if !buf.Publish(&activitypb.BackendApiActivity{ClientHost: "192.0.2.7", RequestId: strconv.Itoa(i)}) {
			t.Fatalf("event %d not accepted", i)
		}
	}
	testutil.Eventually(t, 20*time.Second, func() (bool, string) {
		st := buf.Stats()
		return st.Retried > 0 && !buf.Healthy(), fmt.Sprintf("retried %d, healthy %v; want failed deliveries kept", st.Retried, buf.Healthy())
	})

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.SeedTopics(partitions, string(codecs.ActivityTopic)))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	testutil.Eventually(t, 60*time.Second, func() (bool, string) {
		st := buf.Stats()
		return st.Delivered == n, fmt.Sprintf("delivered %d of %d (retried %d)", st.Delivered, n, st.Retried)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := buf.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := buf.Stats(); st.Failed != 0 || st.Dropped != 0 || st.InFlight != 0 || !buf.Healthy() {
		t.Errorf("stats %+v, healthy %v; want every event delivered", st, buf.Healthy())
	}

	seen := map[string]int{}
	testutil.ReadTopic(ctx, t, addrs, string(codecs.ActivityTopic), n, func(r *kgo.Record) {
		var ev activitypb.BackendApiActivity
		if err := proto.Unmarshal(r.Value, &ev); err != nil {
			t.Fatal(err)
		}
		seen[ev.RequestId]++
		if string(r.Key) != "192.0.2.7" || r.Partition != kafka.PartitionOf("192.0.2.7", partitions) {
			t.Errorf("event %s under key %q in partition %d, want its client's", ev.RequestId, r.Key, r.Partition)
		}
	})
	for i := range n {
		if c := seen[strconv.Itoa(i)]; c != 1 {
			t.Errorf("event %d in the topic %d times, want once", i, c)
		}
	}
}

// doneLog records the calls of a transport's done.
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

// The transport encodes with its codec, places keys where goka's hasher
// (Kafka's murmur2) does, keeps a partition's records in order, and calls
// done once per message with that message.
func TestKafkaTransportEncodesPartitionsAndOrders(t *testing.T) {
	const topic, partitions = "t", 4
	c := kafkatest.Start(t, topic, partitions)
	em, err := middleware.NewKafkaTransport(c.Addrs, middleware.KafkaTopic(topic), middleware.KafkaCodec(new(codec.String)), middleware.KafkaLinger(time.Millisecond))
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
func TestKafkaTransportRefusesWhatItCannotEncode(t *testing.T) {
	c := kafkatest.Start(t, "t", 1)
	em, err := middleware.NewKafkaTransport(c.Addrs, middleware.KafkaTopic("t"), middleware.KafkaCodec(new(codec.String)), middleware.KafkaLinger(time.Millisecond))
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
// done reports it, so the buffer can keep the event for later.
func TestKafkaTransportReportsUndeliveredRecords(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	addrs := cluster.ListenAddrs()
	cluster.Close()
	em, err := middleware.NewKafkaTransport(addrs, middleware.KafkaTopic("t"), middleware.KafkaCodec(new(codec.String)),
		middleware.KafkaClientOpts(kgo.RecordDeliveryTimeout(time.Second))) // kgo's least
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

package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/stream"
	"github.com/inarious/inarious/internal/testutil"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Over the franz-go emitter the API runs with, events the producer gives up
// on while the broker is unreachable are kept, and delivered once each when
// it is back, keyed and placed by their client.
func TestPublisherOverFranzDeliversAfterOutage(t *testing.T) {
	const partitions = 4
	port := freePort(t)
	addrs := []string{fmt.Sprintf("127.0.0.1:%d", port)}
	prod, err := stream.NewFranzEmitter(addrs, "test", codecs.ActivityTopic, new(codecs.Activity), kafka.Hasher, time.Millisecond,
		kgo.RecordDeliveryTimeout(time.Second)) // kgo's least: the outage is short
	if err != nil {
		t.Fatal(err)
	}
	pub := api.NewEventPublisher(prod, 64, api.WithLogger(slog.New(slog.DiscardHandler)))
	const n = 20
	for i := range n {
		if !pub.Publish(&activitypb.BackendApiActivity{ClientHost: "192.0.2.7", RequestId: strconv.Itoa(i)}) {
			t.Fatalf("event %d not accepted", i)
		}
	}
	testutil.Eventually(t, 20*time.Second, func() (bool, string) {
		st := pub.Stats()
		return st.Retried > 0 && !pub.Healthy(), fmt.Sprintf("retried %d, healthy %v; want failed deliveries kept", st.Retried, pub.Healthy())
	})

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.SeedTopics(partitions, string(codecs.ActivityTopic)))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	testutil.Eventually(t, 60*time.Second, func() (bool, string) {
		st := pub.Stats()
		return st.Delivered == n, fmt.Sprintf("delivered %d of %d (retried %d)", st.Delivered, n, st.Retried)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pub.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if st := pub.Stats(); st.Failed != 0 || st.Dropped != 0 || st.InFlight != 0 || !pub.Healthy() {
		t.Errorf("stats %+v, healthy %v; want every event delivered", st, pub.Healthy())
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

// Package procbench measures how fast a processor group drains a pre-filled
// Users topic, and how fast a worker recovers its table, for BENCHMARKS.md.
package procbench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/kafka"
)

var routes = []struct{ method, route string }{
	{"GET", "/usage/{client}"}, {"GET", "/users/{id}"}, {"POST", "/users"},
	{"PATCH", "/users/{id}"}, {"GET", "/healthz"},
}

// MaxClients is how many distinct synthetic clients there are (10.0.0.0/8).
const MaxClients = 1 << 24

// ClientName is the i-th synthetic client (i < MaxClients).
func ClientName(i int) string { return fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff) }

// Prefill writes n activity events spread over m clients to the Users topic,
// keyed by client with Kafka's default partitioner (murmur2, the partitioner
// the API's emitter uses too: kafka.Hasher), as the API would.
func Prefill(ctx context.Context, brokers []string, n, m int) error {
	return produce(ctx, brokers, n, func(i int) string { return ClientName(i % m) })
}

// PrefillRange writes one event for each of the clients from..to-1.
func PrefillRange(ctx context.Context, brokers []string, from, to int) error {
	return produce(ctx, brokers, to-from, func(i int) string { return ClientName(from + i) })
}

func produce(ctx context.Context, brokers []string, n int, client func(int) string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		// Keys go where kafka.Hasher (the API's and the view's) puts them;
		// internal/kafka tests that the two agree.
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchMaxBytes(1<<20),
		kgo.MaxBufferedRecords(1<<16),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	now := timestamppb.Now()
	errs := make(chan error, 1)
	for i := 0; i < n; i++ {
		c := client(i)
		r := routes[rng.IntN(len(routes))]
		b, err := proto.Marshal(&activitypb.BackendApiActivity{
			ClientHost: c, ClientPort: "40000", Endpoint: r.route, HttpMethod: r.method,
			HttpStatus: 200, DurationUs: 120, RequestTime: now, Route: r.route, Client: c,
		})
		if err != nil {
			return err
		}
		cl.Produce(ctx, &kgo.Record{Topic: string(kafka.ActivityTopic), Key: []byte(c), Value: b},
			func(_ *kgo.Record, err error) {
				if err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	select {
	case err := <-errs:
		return fmt.Errorf("prefill: %w", err)
	default:
		return nil
	}
}

// poll calls cond every few milliseconds until it holds or ctx ends.
func poll(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

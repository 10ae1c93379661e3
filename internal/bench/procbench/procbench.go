// Package procbench measures how fast a processor group drains a pre-filled
// Users topic, and how fast a worker recovers its table, for BENCHMARKS.md.
package procbench

import (
	"github.com/inarious/inarious/codecs"

	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs/activitypb"
)

var routes = []struct{ method, route string }{
	{"GET", "/usage/{client}"}, {"GET", "/users/{id}"}, {"POST", "/users"},
	{"PATCH", "/users/{id}"}, {"GET", "/healthz"},
}

// ClientName is the i-th synthetic client.
func ClientName(i int) string { return fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff) }

// Prefill writes n activity events spread over m clients to the Users topic,
// keyed by client with Kafka's default partitioner, as the API would.
func Prefill(ctx context.Context, brokers []string, n, m int) error {
	return produce(ctx, brokers, n, func(i int) string { return ClientName(i % m) }, nil)
}

// PrefillZipf is Prefill with skewed traffic, as real API traffic is: the
// client of each event is drawn from a Zipf distribution with exponent s > 1
// over the m clients (client 0 the busiest), the same draws every run.
func PrefillZipf(ctx context.Context, brokers []string, n, m int, s float64) error {
	if s <= 1 || m < 1 {
		return fmt.Errorf("prefill: zipf needs s > 1 and clients >= 1, got s=%v, clients=%d", s, m)
	}
	z := rand.NewZipf(rand.New(rand.NewPCG(3, 4)), s, 1, uint64(m-1))
	return produce(ctx, brokers, n, func(int) string { return ClientName(int(z.Uint64())) }, nil)
}

// PrefillByServer is Prefill keyed the way the original FastAPI service
// keyed events: by the hostname of the API server that saw the call, here one
// of servers names. Every event then needs re-keying to its client.
func PrefillByServer(ctx context.Context, brokers []string, n, m, servers int) error {
	return produce(ctx, brokers, n, func(i int) string { return ClientName(i % m) },
		func(i int) string { return fmt.Sprintf("api-server-%d", i%servers) })
}

// PrefillRange writes one event for each of the clients from..to-1.
func PrefillRange(ctx context.Context, brokers []string, from, to int) error {
	return produce(ctx, brokers, to-from, func(i int) string { return ClientName(from + i) }, nil)
}

// produce writes n events, the i-th for client(i), keyed by key(i) (by the
// client when key is nil).
func produce(ctx context.Context, brokers []string, n int, client, key func(int) string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
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
		k := c
		if key != nil {
			k = key(i)
		}
		cl.Produce(ctx, &kgo.Record{Topic: string(codecs.ActivityTopic), Key: []byte(k), Value: b},
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

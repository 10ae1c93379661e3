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

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/bench/loadgen"
)

var routes = []struct{ method, route string }{
	{"GET", "/usage/{client}"}, {"GET", "/users/{id}"}, {"POST", "/users"},
	{"PATCH", "/users/{id}"}, {"GET", "/healthz"},
}

// statuses are drawn uniformly: 2 in 25 calls fail with a 4xx, 1 in 25 with a 5xx.
var statuses = []int32{200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 200, 201, 204, 304, 404, 429, 503}

// MaxClients is how many distinct synthetic clients there are (10.0.0.0/8).
const MaxClients = 1 << 24

// ClientName is the i-th synthetic client (i < MaxClients).
func ClientName(i int) string { return fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff) }

// Load says what a prefill writes: Events activity events over Clients
// clients, as the API would key them unless Servers says otherwise.
type Load struct {
	Events, Clients int
	// Zipf > 1 draws each event's client from a Zipf distribution with this
	// exponent over the clients (client 0 the busiest, the same draws every
	// run), as real API traffic is skewed; 0 goes round robin.
	Zipf float64
	// Span spreads the request times evenly over the span ending now, so
	// windowed buckets close while the events are counted; 0: all at once.
	Span time.Duration
	// Servers > 0 keys the events the way the original FastAPI service did:
	// by the hostname of the API server that saw the call, one of Servers
	// names. Every event then needs re-keying to its client.
	Servers int
	// Endpoints > 0 spreads the events uniformly over that many synthetic
	// endpoints (loadgen.BenchRoute) instead of five of the API's own.
	Endpoints int
	// Services > 1 spreads the events uniformly over that many services:
	// the default one and BenchService(1) to BenchService(Services-1).
	Services int
}

// BenchService is the name of the i-th synthetic service of a Load.
func BenchService(i int) string { return fmt.Sprintf("svc-%d", i) }

// Prefill writes l's events to the Users topic with Kafka's default
// partitioner.
func Prefill(ctx context.Context, brokers []string, l Load) error {
	client := func(i int) string { return ClientName(i % l.Clients) }
	if l.Zipf != 0 {
		if l.Zipf <= 1 || l.Clients < 1 {
			return fmt.Errorf("prefill: zipf needs s > 1 and clients >= 1, got s=%v, clients=%d", l.Zipf, l.Clients)
		}
		z := rand.NewZipf(rand.New(rand.NewPCG(3, 4)), l.Zipf, 1, uint64(l.Clients-1))
		client = func(int) string { return ClientName(int(z.Uint64())) }
	}
	var key func(int) string
	if l.Servers > 0 {
		key = func(i int) string { return fmt.Sprintf("api-server-%d", i%l.Servers) }
	}
	return produce(ctx, brokers, l, client, key)
}

// PrefillRange writes one event for each of the clients from..to-1.
func PrefillRange(ctx context.Context, brokers []string, from, to int) error {
	return produce(ctx, brokers, Load{Events: to - from}, func(i int) string { return ClientName(from + i) }, nil)
}

// produce writes l.Events events, the i-th for client(i), keyed by key(i)
// (by the client when key is nil), with request times spread over l.Span
// ending now, over the API's routes or l.Endpoints synthetic ones, and
// over l.Services services.
func produce(ctx context.Context, brokers []string, l Load, client, key func(int) string) error {
	n, span, endpoints := l.Events, l.Span, l.Endpoints
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
	// Services are drawn apart, so that the other draws stay those of a
	// load without services.
	services := rand.New(rand.NewPCG(5, 6))
	now := time.Now()
	at := timestamppb.New(now)
	errs := make(chan error, 1)
	for i := 0; i < n; i++ {
		c := client(i)
		r := routes[rng.IntN(len(routes))]
		if endpoints > 0 {
			r.method, r.route = "GET", loadgen.BenchRoute(rng.IntN(endpoints))
		}
		if span > 0 {
			at = timestamppb.New(now.Add(-span + time.Duration(int64(span)*int64(i)/int64(n))))
		}
		ev := &activitypb.BackendApiActivity{
			ClientHost: c, ClientPort: "40000", Endpoint: r.route, HttpMethod: r.method,
			HttpStatus: statuses[rng.IntN(len(statuses))], DurationUs: 50 + int64(rng.ExpFloat64()*5000),
			RequestTime: at, Route: r.route, Client: c,
		}
		if l.Services > 1 {
			if s := services.IntN(l.Services); s > 0 {
				ev.Service = BenchService(s)
			}
		}
		b, err := proto.Marshal(ev)
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

package app_test

import (
	"context"
	"fmt"
	"hash/crc32"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/app"
	"github.com/inarious/inarious/internal/app/apptest"
	"github.com/inarious/inarious/internal/embedkafka"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/testutil"
)

const testPartitions = 4

// librdkafka's default partitioner (confluent-kafka in Python, Go, .NET):
// CRC32 of the key, not Java's murmur2.
func crc32Partition(key string) int32 {
	return int32(crc32.ChecksumIEEE([]byte(key)) % testPartitions)
}

// otherProducer writes to Users the way producers other than Inarious do,
// choosing each record's partition itself.
type otherProducer struct {
	t  *testing.T
	cl *kgo.Client
}

// ownBroker starts an embedded broker for the test and an option that runs
// the system on it, so the test can reach the broker too.
func ownBroker(t *testing.T) (brokers []string, opt apptest.Option) {
	t.Helper()
	b, err := embedkafka.Start(0, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.Addrs(), func(c *app.Config) {
		c.Brokers = b.Addrs()[0]
		c.Kafka.Brokers = b.Addrs()
		c.Kafka.Partitions = testPartitions
	}
}

func startWithOwnBroker(t *testing.T) (*system, *otherProducer) {
	t.Helper()
	brokers, onBroker := ownBroker(t)
	s := &system{apptest.Start(t, nil, onBroker)}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return s, &otherProducer{t: t, cl: cl}
}

func (p *otherProducer) send(key string, partition int32, ev *activitypb.BackendApiActivity) {
	p.t.Helper()
	value, err := proto.Marshal(ev)
	if err != nil {
		p.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec := &kgo.Record{Topic: string(codecs.ActivityTopic), Key: []byte(key), Value: value, Partition: partition}
	if err := p.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		p.t.Fatal(err)
	}
}

// original is an event exactly as the original FastAPI service produced it:
// fields 1-4 only, the full URL as endpoint.
func original(client, method, url string) *activitypb.BackendApiActivity {
	return &activitypb.BackendApiActivity{ClientHost: client, ClientPort: "50000", Endpoint: url, HttpMethod: method}
}

// The original service keyed every event by its own hostname and let
// librdkafka partition by CRC32: every event is counted under its client,
// by path, exactly once.
func TestCountsEventsOfTheOriginalProducer(t *testing.T) {
	s, prod := startWithOwnBroker(t)
	calls := []struct {
		method, url string
		times       int
	}{
		{"GET", "http://localhost:8000/users/", 7},
		{"POST", "http://localhost:8000/users/", 3},
		{"GET", "http://localhost:8000/users/1234", 2},
		{"DELETE", "http://localhost:8000/users/98765?force=true", 1},
	}
	want := map[string]map[string]uint64{}
	for c := range 5 {
		client := fmt.Sprintf("10.0.0.%d", c+1)
		want[client] = map[string]uint64{}
		for _, call := range calls {
			for range call.times + c {
				prod.send("localhost", crc32Partition("localhost"), original(client, call.method, call.url))
			}
			want[client][call.method+" "+codecs.PathTemplate(call.url)] += uint64(call.times + c)
		}
	}
	for client, endpoints := range want {
		testutil.Eventually(t, 30*time.Second, s.counts(t, client, endpoints))
	}
	if u := s.usage(t, "localhost"); u != nil {
		t.Errorf("the producer's hostname was counted as a client: %+v", u)
	}
}

// One client's events sent by producers with different partitioners land in
// different partitions; none of them may overwrite another's counts.
func TestCountsOneClientAcrossPartitioners(t *testing.T) {
	s, prod := startWithOwnBroker(t)
	const client = "10.0.1.1"
	crc, murmur := crc32Partition(client), kafka.PartitionOf(client, testPartitions)
	if crc == murmur {
		t.Fatalf("pick a client whose partitioners disagree (both give %d)", crc)
	}
	ev := original(client, "GET", "http://localhost:8000/users/")
	total := uint64(0)
	for _, step := range []struct {
		partition int32
		n         int
	}{{crc, 60}, {murmur, 12}, {crc, 6}} {
		for range step.n {
			prod.send(client, step.partition, ev)
		}
		total += uint64(step.n)
		testutil.Eventually(t, 30*time.Second, s.counts(t, client, map[string]uint64{"GET /users": total}))
	}
}

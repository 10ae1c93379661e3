package procbench

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/kafka/kafkatest"
	"github.com/inarious/inarious/processors/usage"
)

// TestPrefillRangeKeysLikeTheAPI: every event of a fill is keyed by its
// client, carries it, and sits in the partition kafka.Hasher (the API's
// emitter and the view) picks for that key, each client exactly once.
func TestPrefillRangeKeysLikeTheAPI(t *testing.T) {
	cfg := kafkatest.Config(t, 6)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cfg.EnsureTopics(ctx, usage.Topics()...); err != nil {
		t.Fatal(err)
	}
	const from, to = 70_000, 73_000
	if err := PrefillRange(ctx, cfg.Brokers, from, to); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ConsumeTopics(string(codecs.ActivityTopic)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seen := map[string]bool{}
	for len(seen) < to-from {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("after %d records: %v", len(seen), err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var ev activitypb.BackendApiActivity
			if err := ev.UnmarshalVT(r.Value); err != nil {
				t.Fatal(err)
			}
			key := string(r.Key)
			h := kafka.Hasher()
			_, _ = h.Write(r.Key)
			if want := int32(h.Sum32()) % int32(cfg.Partitions); r.Partition != want || ev.Client != key || seen[key] {
				t.Fatalf("record %q (client %q) in partition %d, want %d once", key, ev.Client, r.Partition, want)
			}
			seen[key] = true
		})
	}
	if !seen[ClientName(from)] || !seen[ClientName(to-1)] {
		t.Errorf("range ends missing")
	}
}

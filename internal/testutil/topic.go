package testutil

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadTopic reads topic from its start on brokers until n records have been
// read, calling each for every one; it fails the test when ctx ends first.
func ReadTopic(ctx context.Context, t testing.TB, brokers []string, topic string, n int, each func(*kgo.Record)) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for read := 0; read < n; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("after %d of %d records: %v", read, n, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			read++
			each(r)
		})
	}
}

package quotas_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/kafka/kafkatest"
	"github.com/inarious/inarious/internal/quotas"
	"github.com/inarious/inarious/internal/testutil"
)

// runTable runs a table on the broker until the test ends.
func runTable(t *testing.T, table *quotas.Table) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- table.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("view: %v", err)
		}
		if err := table.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	testutil.Eventually(t, 30*time.Second, func() (bool, string) { return table.Recovered(), "view not recovered" })
}

// A write on one replica's table is read back there at once, and shows on
// another replica's view; a delete too.
func TestTableWritesReachEveryView(t *testing.T) {
	kc := kafkatest.Config(t, 4)
	if err := kc.EnsureTopics(context.Background(), quotas.TopicSpec()); err != nil {
		t.Fatal(err)
	}
	var tables [2]*quotas.Table
	for i := range tables {
		tb, err := quotas.NewTable(kc, nil)
		if err != nil {
			t.Fatal(err)
		}
		runTable(t, tb)
		tables[i] = tb
	}
	p := &quotas.Policy{Client: "alice", Limits: []quotas.Limit{{Window: "1m", Limit: 10}}}
	if err := tables[0].Put(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	if got, err := tables[0].Get("alice"); err != nil || got == nil || !got.Updated.Equal(p.Updated) || got.Limits[0].Limit != 10 {
		t.Fatalf("read after write = %+v, %v", got, err)
	}
	if err := tables[0].Put(context.Background(), &quotas.Policy{Client: quotas.Default, Limits: []quotas.Limit{{Window: "1h", Limit: 5}}}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		ps, err := tables[1].List()
		return err == nil && len(ps) == 2 && ps[0].Client == quotas.Default && ps[1].Client == "alice", fmt.Sprintf("other replica lists %v (%v)", ps, err)
	})
	if err := tables[0].Delete(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	if got, _ := tables[0].Get("alice"); got != nil {
		t.Errorf("read after delete = %+v, want none", got)
	}
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		got, err := tables[1].Get("alice")
		return err == nil && got == nil, fmt.Sprintf("other replica still has %+v (%v)", got, err)
	})
}

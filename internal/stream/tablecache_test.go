package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"

	"github.com/inarious/inarious/internal/testutil"
)

// fakeContext is the part of a goka.Context the table cache uses: it
// records commits and direct writes.
type fakeContext struct {
	unused
	key       string
	partition int32
	run       context.Context

	mu       sync.Mutex
	set      []any
	deferred int
	commits  []error
}

// unused is the rest of goka.Context: calling it panics.
type unused struct{ goka.Context }

func (c *fakeContext) Key() string              { return c.key }
func (c *fakeContext) Partition() int32         { return c.partition }
func (c *fakeContext) Context() context.Context { return c.run }
func (c *fakeContext) SetValue(v any, _ ...goka.ContextOption) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.set = append(c.set, v)
}

func (c *fakeContext) DeferCommit() func(error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deferred++
	return func(err error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.commits = append(c.commits, err)
	}
}

func (c *fakeContext) committed() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]error(nil), c.commits...)
}

// boundCache is a cache with its producer and partition 0's memory storage
// bound, as stream.NewProcessor binds them.
func boundCache(t *testing.T, opts TableCacheOptions) (*TableCache, *fakeProducer, storage.Storage) {
	t.Helper()
	c := NewTableCache("usage", new(codec.String), opts, WithLogger(slog.New(slog.DiscardHandler)))
	f := &fakeProducer{}
	c.UseProducer(f)
	st, err := c.WrapStorage(func(string, int32) (storage.Storage, error) { return storage.NewMemory(), nil })(table, 0)
	if err != nil {
		t.Fatal(err)
	}
	return c, f, st
}

// set updates key's row to value as a callback does.
func set(c *TableCache, ctx *fakeContext, value string) bool {
	rows := c.Lock(ctx)
	defer rows.Unlock()
	return rows.Set(ctx, value)
}

// manual keeps the writer's timer out of tests that flush by hand.
var manual = TableCacheOptions{Interval: time.Hour, MaxRows: 1000}

func TestTableCacheWritesEachRowOnceAndCommitsAfterTheLastAck(t *testing.T) {
	c, f, st := boundCache(t, manual)
	run, stop := context.WithCancel(context.Background())
	defer stop()
	a := &fakeContext{key: "a", run: run}
	b := &fakeContext{key: "b", run: run}
	set(c, a, "a1")
	set(c, b, "b1")
	set(c, a, "a2")
	rows := c.Lock(a)
	if v, ok := rows.Get("a"); !ok || v != "a2" {
		t.Errorf("held row a = %v, %v; want a2", v, ok)
	}
	rows.Unlock()
	if n := len(f.records()); n != 0 {
		t.Fatalf("%d records written before the flush", n)
	}
	if n := c.Unwritten(); n != 2 {
		t.Errorf("Unwritten = %d with two rows held, want 2", n)
	}
	rows.Flush()

	got := f.records()
	if len(got) != 2 || got[0].key != "a" || got[0].value != "a2" || got[1].key != "b" || got[1].value != "b1" || got[0].topic != table {
		t.Fatalf("changelog records %+v, want a=a2 then b=b1 on %s", got, table)
	}
	if v, _ := st.Get("a"); string(v) != "a2" {
		t.Errorf("storage a = %q before the ack, want a2 (local storage is written at once)", v)
	}
	if len(a.committed())+len(b.committed()) != 0 || a.deferred != 2 || b.deferred != 1 {
		t.Fatalf("commits before any ack: a %v, b %v (deferred %d, %d)", a.committed(), b.committed(), a.deferred, b.deferred)
	}
	f.ack(t, 0)
	if n := len(a.committed()) + len(b.committed()); n != 0 {
		t.Fatalf("%d commits after the first of two acks: b's row is not durable yet", n)
	}
	if n := c.Unwritten(); n != 1 {
		t.Errorf("Unwritten = %d with one record unacknowledged, want 1", n)
	}
	last := f.ack(t, 1)
	if n := c.Unwritten(); n != 0 {
		t.Errorf("Unwritten = %d after every ack, want 0", n)
	}
	if got := a.committed(); len(got) != 2 || got[0] != nil || got[1] != nil {
		t.Errorf("a's commits %v, want two nil", got)
	}
	if got := b.committed(); len(got) != 1 || got[0] != nil {
		t.Errorf("b's commits %v, want one nil", got)
	}
	if off, _ := st.GetOffset(-1); off != last {
		t.Errorf("storage offset %d, want the last record's %d", off, last)
	}
	if len(a.set)+len(b.set) != 0 {
		t.Errorf("bound cache wrote through ctx.SetValue: %v %v", a.set, b.set)
	}
}

func TestTableCacheFailsEveryCommitOfAFailedWrite(t *testing.T) {
	c, f, st := boundCache(t, manual)
	ctx := &fakeContext{key: "a", run: t.Context()}
	other := &fakeContext{key: "b", run: t.Context()}
	set(c, ctx, "a1")
	set(c, other, "b1")
	c.partition(0).Flush()
	f.ack(t, 0)
	boom := errors.New("broker gone")
	f.records()[1].finish(nil, boom)
	for _, got := range [][]error{ctx.committed(), other.committed()} {
		if len(got) != 1 || !errors.Is(got[0], boom) {
			t.Errorf("commits %v, want the write's error", got)
		}
	}
	if off, _ := st.GetOffset(-1); off != -1 {
		t.Errorf("storage offset moved to %d by a failed write", off)
	}
}

func TestTableCacheWritesThroughWhenUnbound(t *testing.T) {
	c := NewTableCache("usage", new(codec.String), manual)
	ctx := &fakeContext{key: "a", run: t.Context()}
	set(c, ctx, "a1")
	if len(ctx.set) != 1 || ctx.set[0] != "a1" || ctx.deferred != 0 {
		t.Fatalf("without producer and storage (goka's tester): SetValue %v, deferred %d; want one SetValue", ctx.set, ctx.deferred)
	}
}

func TestTableCacheWritesFullPartitionsAtOnce(t *testing.T) {
	c, f, _ := boundCache(t, TableCacheOptions{Interval: time.Hour, MaxRows: 3})
	run := t.Context()
	for i := range 3 {
		full := set(c, &fakeContext{key: fmt.Sprint(i), run: run}, "v")
		if full != (i == 2) {
			t.Fatalf("after %d rows full = %v", i+1, full)
		}
	}
	c.partition(0).Flush()
	if n := len(f.records()); n != 3 {
		t.Fatalf("%d records, want 3", n)
	}
}

func TestTableCacheWriterWritesAQuietPartitionAndAtStop(t *testing.T) {
	c, f, _ := boundCache(t, TableCacheOptions{Interval: time.Hour, Idle: 5 * time.Millisecond, MaxRows: 1000})
	set(c, &fakeContext{key: "a", run: t.Context()}, "a1")
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		return len(f.records()) == 1, fmt.Sprintf("%d records written after the partition went quiet", len(f.records()))
	})

	// A row updated just before the processor stops is written at the stop.
	slow, fp, _ := boundCache(t, manual)
	run, stop := context.WithCancel(context.Background())
	set(slow, &fakeContext{key: "b", run: run}, "b1")
	stop()
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		return len(fp.records()) == 1, fmt.Sprintf("%d records written after the stop", len(fp.records()))
	})
}

func TestTableCacheWriterWritesWithinTheIntervalWhileUpdatesKeepComing(t *testing.T) {
	// Idle as long as the interval: updates every millisecond never leave
	// the partition quiet for it, so only the interval can end the hold.
	c, f, _ := boundCache(t, TableCacheOptions{Interval: 30 * time.Millisecond, Idle: time.Hour, MaxRows: 1000})
	ctx := &fakeContext{key: "a", run: t.Context()}
	start := time.Now()
	for len(f.records()) == 0 && time.Since(start) < 5*time.Second {
		set(c, ctx, "a")
		time.Sleep(time.Millisecond) // a steady stream of updates, not a wait for a result
	}
	if len(f.records()) == 0 {
		t.Fatal("no write in 5 s while updates kept coming")
	}
}

func TestTableCacheFailsHeldCommitsWhenTheStorageCloses(t *testing.T) {
	c, f, st := boundCache(t, manual)
	ctx := &fakeContext{key: "a", run: t.Context()}
	set(c, ctx, "a1")
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if got := ctx.committed(); len(got) != 1 || got[0] == nil {
		t.Fatalf("commits %v after the storage closed with the row held, want one error", got)
	}
	c.partition(0).Flush()
	if n := len(f.records()); n != 0 {
		t.Fatalf("%d records written after the storage closed", n)
	}
	// Unbound again: the next update goes through goka.
	next := &fakeContext{key: "a", run: t.Context()}
	set(c, next, "a2")
	if len(next.set) != 1 {
		t.Fatalf("update after close: SetValue %v", next.set)
	}
}

// While the fence fails (a stalled member's lease), rows are held, not
// written; written once it passes; dropped with their commits failed when
// the partition's run ends still fenced. A write acknowledged while fenced
// does not move the recovery offset.
func TestTableCacheFence(t *testing.T) {
	c, f, st := boundCache(t, manual)
	var stale atomic.Bool
	stale.Store(true)
	c.SetFence(NewFence(func() error {
		if stale.Load() {
			return errors.New("lease stale")
		}
		return nil
	}, "test table", nil))
	a := &fakeContext{key: "a", run: t.Context()}
	set(c, a, "a1")
	c.partition(0).Flush()
	if n := len(f.records()); n != 0 || c.Unwritten() != 1 {
		t.Fatalf("fenced flush wrote %d records, holds %d rows; want 0 and 1", n, c.Unwritten())
	}
	stale.Store(false)
	c.partition(0).Flush()
	if n := len(f.records()); n != 1 {
		t.Fatalf("%d records after the fence passed, want 1", n)
	}
	// Acknowledged after the lease went stale: no recovery offset from it.
	stale.Store(true)
	f.ack(t, 0)
	if off, _ := st.GetOffset(-1); off != -1 {
		t.Errorf("storage offset moved to %d by a write acknowledged while fenced", off)
	}
	if got := a.committed(); len(got) != 1 || got[0] != nil {
		t.Errorf("commits %v, want one nil (the write itself succeeded)", got)
	}

	// The run ends while fenced: the held row is dropped, its commit fails.
	run, stop := context.WithCancel(context.Background())
	b := &fakeContext{key: "b", run: run}
	set(c, b, "b1")
	stop()
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		return len(b.committed()) == 1, fmt.Sprintf("commits %v after the fenced stop", b.committed())
	})
	if err := b.committed()[0]; err == nil || len(f.records()) != 1 || c.Unwritten() != 0 {
		t.Errorf("fenced stop: commit %v, %d records, %d unwritten; want an error, 1, 0", err, len(f.records()), c.Unwritten())
	}
}

package stream

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"

	"github.com/inarious/inarious/internal/kafka"
)

// fakeProducer records what reaches it; the test acknowledges or fails each
// record through its finisher.
type fakeProducer struct {
	mu      sync.Mutex
	sent    []sentRecord
	closed  bool
	offsets int64
}

type sentRecord struct {
	topic, key string
	value      string
	headers    goka.Headers
	finish     goka.PromiseFinisher
}

func (f *fakeProducer) Emit(topic, key string, value []byte) *goka.Promise {
	return f.EmitWithHeaders(topic, key, value, nil)
}

func (f *fakeProducer) EmitWithHeaders(topic, key string, value []byte, headers goka.Headers) *goka.Promise {
	p, finish := goka.NewPromiseWithFinisher()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		panic("emit to a closed producer")
	}
	f.sent = append(f.sent, sentRecord{topic: topic, key: key, value: string(value), headers: headers, finish: finish})
	return p
}

func (f *fakeProducer) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func (f *fakeProducer) records() []sentRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sentRecord(nil), f.sent...)
}

// ack acknowledges the i-th record sent, at the next offset.
func (f *fakeProducer) ack(t *testing.T, i int) int64 {
	t.Helper()
	f.mu.Lock()
	f.offsets++
	off, r := f.offsets, f.sent[i]
	f.mu.Unlock()
	r.finish(&sarama.ProducerMessage{Topic: r.topic, Offset: off}, nil)
	return off
}

// result is what a promise finished with.
type result struct {
	done   bool
	offset int64
	err    error
}

func watch(p *goka.Promise) func() result {
	var mu sync.Mutex
	var r result
	p.ThenWithMessage(func(msg *sarama.ProducerMessage, err error) {
		mu.Lock()
		defer mu.Unlock()
		r.done, r.err = true, err
		if msg != nil {
			r.offset = msg.Offset
		}
	})
	return func() result { mu.Lock(); defer mu.Unlock(); return r }
}

const table = "usage-table"

// longWindow keeps timers out of tests that flush by hand.
var longWindow = CoalesceOptions{Window: time.Hour, MaxKeys: 1000}

func TestCoalescerKeepsLastValuePerKey(t *testing.T) {
	f := &fakeProducer{}
	c := NewCoalescer(f, table, longWindow)
	a1 := watch(c.Emit(table, "a", []byte("a1")))
	b1 := watch(c.Emit(table, "b", []byte("b1")))
	a2 := watch(c.Emit(table, "a", []byte("a2")))
	a3 := watch(c.EmitWithHeaders(table, "a", []byte("a3"), goka.Headers{"h": []byte("3")}))
	if n := len(f.records()); n != 0 {
		t.Fatalf("%d records sent before the flush", n)
	}
	c.Flush()
	got := f.records()
	if len(got) != 2 {
		t.Fatalf("sent %d records, want 2: %+v", len(got), got)
	}
	if got[0].key != "a" || got[0].value != "a3" || string(got[0].headers["h"]) != "3" {
		t.Errorf("first record %q=%q %v, want a=a3 with header h=3", got[0].key, got[0].value, got[0].headers)
	}
	if got[1].key != "b" || got[1].value != "b1" {
		t.Errorf("second record %q=%q, want b=b1", got[1].key, got[1].value)
	}
	for name, r := range map[string]func() result{"a1": a1, "a2": a2, "a3": a3, "b1": b1} {
		if r().done {
			t.Errorf("promise %s finished before its record was acknowledged", name)
		}
	}
	off := f.ack(t, 0)
	for name, r := range map[string]func() result{"a1": a1, "a2": a2, "a3": a3} {
		if got := r(); !got.done || got.err != nil || got.offset != off {
			t.Errorf("promise %s = %+v, want done at offset %d", name, got, off)
		}
	}
	if b1().done {
		t.Error("b's promise finished with a's acknowledgement")
	}
	off = f.ack(t, 1)
	if got := b1(); !got.done || got.offset != off {
		t.Errorf("promise b1 = %+v, want done at offset %d", got, off)
	}
}

func TestCoalescerFailsEveryReplacedPromise(t *testing.T) {
	f := &fakeProducer{}
	c := NewCoalescer(f, table, longWindow)
	p1 := watch(c.Emit(table, "a", []byte("1")))
	p2 := watch(c.Emit(table, "a", []byte("2")))
	c.Flush()
	boom := errors.New("broker gone")
	f.records()[0].finish(nil, boom)
	for _, r := range []func() result{p1, p2} {
		if got := r(); !got.done || !errors.Is(got.err, boom) {
			t.Errorf("promise = %+v, want failed with %v", got, boom)
		}
	}
}

func TestCoalescerPassesOtherTopicsThroughInOrder(t *testing.T) {
	f := &fakeProducer{}
	c := NewCoalescer(f, table, longWindow)
	var want []string
	for i := range 5 {
		for _, topic := range []string{"usage-loop", "Users.deadletter"} {
			v := fmt.Sprintf("%s-%d", topic, i)
			c.Emit(topic, "same-key", []byte(v))
			want = append(want, v)
		}
		c.Emit(table, "same-key", []byte("held"))
	}
	got := f.records()
	if len(got) != len(want) {
		t.Fatalf("sent %d records before the flush, want the %d pass-through ones", len(got), len(want))
	}
	for i, r := range got {
		if r.value != want[i] || r.key != "same-key" {
			t.Errorf("record %d = %s %q=%q, want %q", i, r.topic, r.key, r.value, want[i])
		}
	}
	// Pass-through promises are the underlying producer's own.
	p := watch(c.Emit("usage-loop", "k", []byte("x")))
	f.ack(t, len(got))
	if !p().done {
		t.Error("pass-through promise not finished by its acknowledgement")
	}
}

func TestCoalescerKeepsKeyOrderAcrossFlushes(t *testing.T) {
	f := &fakeProducer{}
	c := NewCoalescer(f, table, CoalesceOptions{Window: 50 * time.Microsecond, MaxKeys: 3})
	const writers, perWriter = 4, 2000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			key := fmt.Sprintf("k%d", w)
			for i := range perWriter {
				c.Emit(table, key, []byte(fmt.Sprint(i)))
				if i%7 == 0 {
					c.Emit(table, fmt.Sprintf("other-%d-%d", w, i), []byte("x"))
				}
			}
		})
	}
	wg.Wait()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	last := map[string]int{}
	for _, r := range f.records() {
		if r.key[0] != 'k' {
			continue
		}
		var v int
		if _, err := fmt.Sscan(r.value, &v); err != nil {
			t.Fatalf("key %s: value %q: %v", r.key, r.value, err)
		}
		if prev, ok := last[r.key]; ok && v <= prev {
			t.Fatalf("key %s: value %d sent after %d", r.key, v, prev)
		}
		last[r.key] = v
	}
	for w := range writers {
		if k := fmt.Sprintf("k%d", w); last[k] != perWriter-1 {
			t.Errorf("key %s ended at %d, want %d", k, last[k], perWriter-1)
		}
	}
}

func TestCoalescerFlushesWhenFull(t *testing.T) {
	f := &fakeProducer{}
	c := NewCoalescer(f, table, CoalesceOptions{Window: time.Hour, MaxKeys: 3})
	c.Emit(table, "a", []byte("1"))
	c.Emit(table, "b", []byte("1"))
	c.Emit(table, "a", []byte("2"))
	if n := len(f.records()); n != 0 {
		t.Fatalf("flushed at 2 keys: %d records", n)
	}
	c.Emit(table, "c", []byte("1"))
	if n := len(f.records()); n != 3 {
		t.Fatalf("after the third key %d records sent, want 3", n)
	}
}

func TestCoalescerFlushesAfterWindow(t *testing.T) {
	f := &fakeProducer{}
	c := NewCoalescer(f, table, CoalesceOptions{Window: time.Millisecond, MaxKeys: 1000})
	c.Emit(table, "a", []byte("1"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for len(f.records()) == 0 {
		select {
		case <-ctx.Done():
			t.Fatal("record not flushed after the window")
		case <-time.After(time.Millisecond):
		}
	}
}

func TestCoalescerCloseFlushesAndRejectsLaterEmits(t *testing.T) {
	f := &fakeProducer{}
	c := NewCoalescer(f, table, longWindow)
	c.Emit(table, "a", []byte("1"))
	c.Emit("usage-loop", "a", []byte("l"))
	c.Emit(table, "b", []byte("1"))
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	got := f.records()
	if len(got) != 3 || !f.closed {
		t.Fatalf("after Close: %d records sent (want 3), underlying closed %v", len(got), f.closed)
	}
	late := watch(c.Emit(table, "c", []byte("1")))
	if r := late(); !r.done || !errors.Is(r.err, ErrProducerClosed) {
		t.Errorf("emit after Close = %+v, want failed with ErrProducerClosed", r)
	}
}

// Processors coalesce their group table's changelog, and nothing else.
func TestProducerBuilderCoalescesTheGroupTable(t *testing.T) {
	cfg := kafka.Defaults()
	cfg.Producer = kafka.ProducerFranz // builds without reaching a broker
	graph := goka.DefineGroup("g",
		goka.Input("in", new(codec.Bytes), func(goka.Context, any) {}),
		goka.Persist(new(codec.Int64)),
	)
	p, err := producerBuilder(cfg, graph, nil)(cfg.Brokers, "test", kafka.Hasher)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, ok := p.(*Coalescer)
	if !ok {
		t.Fatalf("producer %T, want a *Coalescer", p)
	}
	if c.topic != "g-table" {
		t.Errorf("coalescing %q, want g-table", c.topic)
	}
	if _, ok := c.next.(*franzProducer); !ok {
		t.Errorf("underlying producer %T, want franz-go's", c.next)
	}
}

package middleware_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/middleware"
)

// syncProducer settles every event before Produce returns, as a producer
// does that fails at once; the first failFirst attempts fail.
type syncProducer struct {
	mu        sync.Mutex
	failFirst int
	attempts  int
	delivered []*activitypb.BackendApiActivity
	// inPublish and inPublishAll count the calls made by Publish and
	// PublishAll themselves rather than by the publisher's goroutine.
	inPublish, inPublishAll int
	// held, when set, keeps every delivery unsettled until release.
	held    bool
	waiting []func()
}

func (s *syncProducer) Produce(key string, msg any, done func(any, error)) error {
	stack := make([]byte, 8<<10)
	stack = stack[:runtime.Stack(stack, false)]
	s.mu.Lock()
	s.attempts++
	if bytes.Contains(stack, []byte("middleware.(*Buffer).Publish(")) {
		s.inPublish++
	}
	if bytes.Contains(stack, []byte("middleware.(*Buffer).PublishAll(")) {
		s.inPublishAll++
	}
	if s.held {
		s.waiting = append(s.waiting, func() {
			s.mu.Lock()
			s.delivered = append(s.delivered, msg.(*activitypb.BackendApiActivity))
			s.mu.Unlock()
			done(msg, nil)
		})
		s.mu.Unlock()
		return nil
	}
	fail := s.attempts <= s.failFirst
	if !fail {
		s.delivered = append(s.delivered, msg.(*activitypb.BackendApiActivity))
	}
	s.mu.Unlock()
	if fail {
		done(msg, errors.New("broker unreachable"))
		return nil
	}
	done(msg, nil)
	return nil
}

func (s *syncProducer) Close() error { return nil }

func (s *syncProducer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.delivered)
}

// release settles the deliveries held so far, and holds no more.
func (s *syncProducer) release() {
	s.mu.Lock()
	s.held = false
	waiting := s.waiting
	s.waiting = nil
	s.mu.Unlock()
	for _, settle := range waiting {
		settle()
	}
}

func (s *syncProducer) producedInPublish() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inPublish
}

// With ProduceOnPublish and nothing waiting, Publish hands the event over
// itself: it is with the producer when Publish returns.
func TestBufferProducesOnPublishWhenNothingWaits(t *testing.T) {
	prod := &syncProducer{}
	buf := middleware.NewBuffer(prod, 16, middleware.ProduceOnPublish())
	for i := range 10 {
		if !buf.Publish(&activitypb.BackendApiActivity{Client: "c"}) {
			t.Fatalf("event %d not accepted", i)
		}
		if got := prod.producedInPublish(); got != i+1 {
			t.Fatalf("after %d publishes Publish handed %d events to the producer, want each", i+1, got)
		}
	}
	if err := buf.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := buf.Stats(); st.Accepted != 10 || st.Delivered != 10 || st.Queued != 0 || st.InFlight != 0 {
		t.Errorf("stats %+v, want 10 accepted and delivered", st)
	}
}

// With ProduceOnPublish, PublishAll hands the events that find an
// in-flight slot to the producer itself, queues the rest, and refuses a
// batch whose rest does not fit, giving its slots back.
func TestPublishAllProducesWhatFindsASlot(t *testing.T) {
	batch := func(n int) []*activitypb.BackendApiActivity {
		evs := make([]*activitypb.BackendApiActivity, n)
		for i := range evs {
			evs[i] = &activitypb.BackendApiActivity{Client: "c", HttpMethod: "GET"}
		}
		return evs
	}
	prod := &syncProducer{}
	pub := middleware.NewBuffer(prod, 16, middleware.ProduceOnPublish())
	if !pub.PublishAll(batch(10)) || prod.count() != 10 || prod.inPublishAll != 10 {
		t.Fatalf("%d of 10 delivered, %d by PublishAll; want all, by PublishAll", prod.count(), prod.inPublishAll)
	}
	if err := pub.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	prod = &syncProducer{held: true}
	const slots = 4096 // the buffer's in-flight bound
	pub = middleware.NewBuffer(prod, 100, middleware.ProduceOnPublish())
	if !pub.PublishAll(batch(slots + 100)) {
		t.Fatal("a batch filling the slots and the queue was refused")
	}
	if st := pub.Stats(); st.InFlight != slots || prod.inPublishAll != slots {
		t.Fatalf("stats %+v, %d produced by PublishAll; want %d in flight, produced by PublishAll", st, prod.inPublishAll, slots)
	}
	// The publisher's goroutine may have taken one queued event to wait for a slot.
	if pub.PublishAll(batch(2)) {
		t.Fatal("a batch was taken with no slot and no room in the queue")
	}
	prod.release()
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		prod.release()
		return prod.count() == slots+100, fmt.Sprintf("%d of %d delivered", prod.count(), slots+100)
	})
	if err := pub.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := pub.Stats(); st.Accepted != slots+100 || st.Delivered != slots+100 || st.Dropped != 0 {
		t.Errorf("stats %+v, want every event of the batch taken and delivered, the refused one not dropped", st)
	}
}

// Until ready, events wait in the queue even with ProduceOnPublish.
func TestBufferProducesOnPublishOnlyOnceReady(t *testing.T) {
	prod := &syncProducer{}
	ready := make(chan struct{})
	buf := middleware.NewBuffer(prod, 16, middleware.ProduceOnPublish(), middleware.HoldUntil(ready))
	for range 3 {
		buf.Publish(&activitypb.BackendApiActivity{Client: "c"})
	}
	if got, st := prod.count(), buf.Stats(); got != 0 || st.Queued != 3 {
		t.Fatalf("before ready: %d produced, stats %+v; want 3 queued, none produced", got, st)
	}
	close(ready)
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		return prod.count() == 3, fmt.Sprintf("%d of 3 produced", prod.count())
	})
	if got := prod.producedInPublish(); got != 0 {
		t.Errorf("Publish handed %d events to the producer before ready", got)
	}
	buf.Publish(&activitypb.BackendApiActivity{Client: "c"})
	if got := prod.producedInPublish(); got != 1 {
		t.Errorf("Publish handed %d events to the producer after ready, want the new one", got)
	}
	if err := buf.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Failures settled inside Produce, on the publishing goroutine, are kept
// and retried like any other, and stop handing events over in Publish
// until a delivery succeeds.
func TestBufferProducingOnPublishRetriesFailures(t *testing.T) {
	prod := &syncProducer{failFirst: 3}
	buf := middleware.NewBuffer(prod, 64, middleware.WithLogger(slog.New(slog.DiscardHandler)), middleware.ProduceOnPublish())
	const n = 20
	for i := range n {
		if !buf.Publish(&activitypb.BackendApiActivity{Client: "c"}) {
			t.Fatalf("event %d not accepted", i)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		st := buf.Stats()
		return st.Delivered == n, fmt.Sprintf("delivered %d of %d (retried %d)", st.Delivered, n, st.Retried)
	})
	if err := buf.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := buf.Stats(); st.Retried != 3 || st.Failed != 0 || st.Dropped != 0 || prod.count() != n || !buf.Healthy() {
		t.Errorf("stats %+v, %d produced, healthy %v; want each of %d delivered once after 3 retries", st, prod.count(), buf.Healthy(), n)
	}
}

// Publishing from many goroutines while Close runs accepts or refuses each
// event, and every accepted one is settled by the time Close returns.
func TestBufferProducingOnPublishRacesClose(t *testing.T) {
	prod := &syncProducer{}
	buf := middleware.NewBuffer(prod, 1024, middleware.ProduceOnPublish())
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 500 {
				buf.Publish(&activitypb.BackendApiActivity{Client: "c"})
			}
		})
	}
	if err := buf.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := buf.Stats()
	wg.Wait()
	if st.Accepted != st.Delivered+st.Failed || st.InFlight != 0 || st.Queued != 0 {
		t.Errorf("stats at Close %+v: accepted events left unsettled", st)
	}
	if got := buf.Stats(); got.Accepted != st.Accepted || got.Accepted+got.Dropped != 8*500 {
		t.Errorf("stats %+v after Close, %+v at Close: want nothing accepted after Close, every event accepted or dropped", got, st)
	}
}

// TestPublishAllTakesAWholeBatchOrNone: a batch that does not fit in the
// queue is refused whole, not counted as dropped, and the events already
// queued are delivered once the buffer runs.
func TestPublishAllTakesAWholeBatchOrNone(t *testing.T) {
	prod := &syncProducer{}
	ready := make(chan struct{})
	p := middleware.NewBuffer(prod, 3, middleware.HoldUntil(ready))
	batch := func(n int) []*activitypb.BackendApiActivity {
		evs := make([]*activitypb.BackendApiActivity, n)
		for i := range evs {
			evs[i] = &activitypb.BackendApiActivity{ClientHost: "c", HttpMethod: "GET"}
		}
		return evs
	}
	if !p.PublishAll(batch(2)) {
		t.Fatal("a batch of 2 was refused by an empty queue of 3")
	}
	if p.PublishAll(batch(2)) {
		t.Fatal("a batch of 2 was taken with room for 1")
	}
	if st := p.Stats(); st.Accepted != 2 || st.Dropped != 0 || st.Queued != 2 {
		t.Errorf("stats %+v, want 2 accepted, none dropped, 2 queued", st)
	}
	close(ready)
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		return prod.count() == 2, fmt.Sprintf("%d delivered, want 2", prod.count())
	})
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p.PublishAll(batch(1)) {
		t.Error("a closed buffer took a batch")
	}
}

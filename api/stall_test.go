package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/testutil"
)

// A broker that takes events and never acknowledges them (franz-go holds a
// record up to its 30 s delivery timeout): once events waited StallAfter
// with no delivery, /readyz says so in words, the log says it once for all
// events, and both clear, with one more line, when deliveries resume.
func TestReadyzReportsStalledDeliveries(t *testing.T) {
	em := &fakeEmitter{gate: make(chan struct{})}
	logs := &testutil.LogBuffer{}
	pub := api.NewPublisher(em, 64, api.StallAfter(200*time.Millisecond), api.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	defer pub.Close(context.Background())
	cr, _ := api.NewClientResolver(nil)
	srv, err := newAPI(fakeUsage{}, pub, cr)
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Healthy() || pub.Degraded() != "" {
		t.Fatalf("healthy %v, degraded %q before any event", pub.Healthy(), pub.Degraded())
	}
	const n = 20
	for range n {
		if !pub.Publish(&activitypb.BackendApiActivity{Client: "c"}) {
			t.Fatal("event not accepted")
		}
	}
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		return !pub.Healthy(), "still healthy with every event unacknowledged"
	})
	rec := do(srv, "GET", "/readyz", "127.0.0.1:1", nil)
	var rd struct {
		Ready     bool     `json:"ready"`
		EmitterOK bool     `json:"emitter_ok"`
		Degraded  []string `json:"degraded"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &rd); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusServiceUnavailable || rd.Ready || rd.EmitterOK || len(rd.Degraded) != 1 ||
		!strings.Contains(rd.Degraded[0], "none acknowledged for") {
		t.Errorf("readyz = %d %s; want 503 saying the events' delivery stalled", rec.Code, rec.Body)
	}
	if got := logs.Count("activity events waiting, none acknowledged by the destination"); got != 1 {
		t.Errorf("stall logged %d times, want once for all %d events", got, n)
	}

	close(em.gate)
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		st := pub.Stats() // the readyz request's own event too
		return st.Delivered == st.Accepted && pub.Healthy(), fmt.Sprintf("delivered %d of %d, healthy %v", st.Delivered, st.Accepted, pub.Healthy())
	})
	if rec := do(srv, "GET", "/readyz", "127.0.0.1:1", nil); rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), "degraded") {
		t.Errorf("readyz = %d %s after deliveries resumed, want 200 without degraded", rec.Code, rec.Body)
	}
	if got := logs.Count("activity events delivered again"); got != 1 {
		t.Errorf("recovery logged %d times, want once", got)
	}
}

// scriptedEmitter fails the deliveries attempts picks (counted from 1).
type scriptedEmitter struct {
	mu       sync.Mutex
	attempts int
	fails    func(attempt int) bool
}

func (e *scriptedEmitter) Emit(string, any) (*goka.Promise, error) {
	e.mu.Lock()
	e.attempts++
	fail := e.fails(e.attempts)
	e.mu.Unlock()
	p, finish := goka.NewPromiseWithFinisher()
	if fail {
		finish(nil, errors.New("broker unreachable"))
	} else {
		finish(nil, nil)
	}
	return p, nil
}

func (*scriptedEmitter) Finish() error { return nil }

// Deliveries that fail (the producer gave up) are logged once however many
// events fail, /readyz names the error, and the recovery is one line, also
// when a few stragglers fail right after deliveries resumed (records the
// producer held through the outage time out as the broker comes back).
func TestFailedDeliveriesLoggedOnce(t *testing.T) {
	em := &scriptedEmitter{fails: func(n int) bool { return n <= 10 || n > 15 && n <= 18 }}
	logs := &testutil.LogBuffer{}
	pub := api.NewPublisher(em, 64, api.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	cr, _ := api.NewClientResolver(nil)
	srv, err := newAPI(fakeUsage{}, pub, cr)
	if err != nil {
		t.Fatal(err)
	}
	const n = 30
	for range n {
		pub.Publish(&activitypb.BackendApiActivity{Client: "c"})
	}
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		return pub.Stats().Retried > 0, "no retry yet"
	})
	if rec := do(srv, "GET", "/readyz", "127.0.0.1:1", nil); rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "broker unreachable") {
		t.Errorf("readyz = %d %s; want 503 naming the delivery error", rec.Code, rec.Body)
	}
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		st := pub.Stats() // the readyz request's own event too
		return st.Delivered == st.Accepted, fmt.Sprintf("delivered %d of %d (retried %d)", st.Delivered, st.Accepted, st.Retried)
	})
	if err := pub.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := pub.Stats(); st.Retried != 13 {
		t.Errorf("retried %d, want the 13 failed deliveries", st.Retried)
	}
	if f, r := logs.Count("activity events not delivered; keeping them for retry"), logs.Count("activity events delivered again"); f != 1 || r != 1 {
		t.Errorf("logged the failure %d times and the recovery %d times, want once each for 13 failed deliveries:\n%s", f, r, logs.String())
	}
}

package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/internal/usagehttp"
	"github.com/inarious/inarious/views"
	"github.com/inarious/inarious/views/viewstest"
)

// fakeEmitter records emitted events; block holds deliveries back.
type fakeEmitter struct {
	mu     sync.Mutex
	events []*activitypb.BackendApiActivity
	keys   []string
	err    error
	gate   chan struct{}
	// failFirst makes the first failFirst emits fail, like a broker outage.
	failFirst int
	attempts  int
}

func (f *fakeEmitter) Emit(key string, msg any) (*goka.Promise, error) {
	if f.gate != nil {
		<-f.gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if f.attempts <= f.failFirst {
		p, finish := goka.NewPromiseWithFinisher()
		finish(nil, errors.New("broker unreachable"))
		return p, nil
	}
	f.events = append(f.events, msg.(*activitypb.BackendApiActivity))
	f.keys = append(f.keys, key)
	p, finish := goka.NewPromiseWithFinisher()
	finish(nil, f.err)
	return p, nil
}

func (f *fakeEmitter) Finish() error { return nil }

func (f *fakeEmitter) emitted() []*activitypb.BackendApiActivity {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*activitypb.BackendApiActivity(nil), f.events...)
}

// fakeUsage is a usage table of fixed rows.
type fakeUsage = viewstest.Rows

// newAPI is api.New serving the usage routes over usage, as the app does.
func newAPI(usage views.UsageReader, pub *api.Publisher, cr *api.ClientResolver, opts ...api.Option) (*api.Server, error) {
	return api.New(pub, cr, append([]api.Option{api.WithRoutes(usagehttp.Routes(usage)...), api.WithRecovered(usage.Recovered)}, opts...)...)
}

func newServer(t *testing.T, usage views.UsageReader, trusted ...string) (*api.Server, *fakeEmitter, *api.Publisher) {
	t.Helper()
	em := &fakeEmitter{}
	pub := api.NewPublisher(em, 128)
	t.Cleanup(func() { _ = pub.Close(context.Background()) })
	cr, err := api.NewClientResolver(trusted)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := newAPI(usage, pub, cr)
	if err != nil {
		t.Fatal(err)
	}
	return srv, em, pub
}

func do(h http.Handler, method, target, remote string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	req.RemoteAddr = remote
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestEveryRequestEmitsOneActivityEvent(t *testing.T) {
	srv, em, _ := newServer(t, fakeUsage{})
	cases := []struct {
		method, path, route string
		status              int
	}{
		{"GET", "/healthz", "/healthz", 200},
		{"GET", "/usage/somebody", "/usage/{client}", 404},
		{"GET", "/no/such/path", httpx.UnmatchedRoute, 404},
		{"DELETE", "/usage", httpx.UnmatchedRoute, 405},
	}
	for _, c := range cases {
		rec := do(srv, c.method, c.path, "192.0.2.7:4000", map[string]string{"X-Request-Id": "req-" + c.path})
		if rec.Code != c.status {
			t.Errorf("%s %s = %d, want %d", c.method, c.path, rec.Code, c.status)
		}
	}
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		n := len(em.emitted())
		return n == len(cases), fmt.Sprintf("%d events emitted, want %d", n, len(cases))
	})
	for i, ev := range em.emitted() {
		c := cases[i]
		if ev.HttpMethod != c.method || ev.Endpoint != c.path || ev.Route != c.route || ev.HttpStatus != int32(c.status) {
			t.Errorf("event %d = %v, want %+v", i, ev, c)
		}
		if ev.ClientHost != "192.0.2.7" || ev.ClientPort != "4000" || ev.Client != "192.0.2.7" || em.keys[i] != "192.0.2.7" {
			t.Errorf("event %d client %q:%q key %q", i, ev.ClientHost, ev.ClientPort, em.keys[i])
		}
		if ev.RequestId != "req-"+c.path || ev.RequestTime == nil || ev.DurationUs < 0 {
			t.Errorf("event %d: id %q time %v duration %d", i, ev.RequestId, ev.RequestTime, ev.DurationUs)
		}
	}
}

func TestClientResolver(t *testing.T) {
	cr, err := api.NewClientResolver([]string{"10.0.0.0/8", "192.0.2.1"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, remote, xff, host, port string
	}{
		{"direct", "203.0.113.5:999", "", "203.0.113.5", "999"},
		{"untrusted peer cannot spoof", "203.0.113.5:999", "1.2.3.4", "203.0.113.5", "999"},
		{"trusted proxy", "10.1.1.1:80", "198.51.100.9", "198.51.100.9", ""},
		{"proxy chain takes nearest untrusted", "10.1.1.1:80", "6.6.6.6, 198.51.100.9, 10.2.2.2", "198.51.100.9", ""},
		{"single trusted address", "192.0.2.1:80", "198.51.100.10", "198.51.100.10", ""},
		{"garbage hop stops the walk", "10.1.1.1:80", "nonsense", "10.1.1.1", ""},
		{"only proxies", "10.1.1.1:80", "10.3.3.3", "10.3.3.3", ""},
		{"ipv6 peer", "[2001:db8::1]:443", "", "2001:db8::1", "443"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = c.remote
			if c.xff != "" {
				req.Header.Set("X-Forwarded-For", c.xff)
			}
			host, port := cr.Resolve(req)
			if host != c.host || port != c.port {
				t.Errorf("Resolve = %q %q, want %q %q", host, port, c.host, c.port)
			}
		})
	}
	if _, err := api.NewClientResolver([]string{"not-an-ip"}); err == nil {
		t.Error("bad trusted proxy accepted")
	}
}

func TestPublisherDropsWhenFullAndNeverBlocks(t *testing.T) {
	em := &fakeEmitter{gate: make(chan struct{})}
	pub := api.NewPublisher(em, 4)
	// One event is taken by the running loop and blocks in Emit; four fill
	// the queue; the rest must be dropped at once.
	accepted := 0
	for i := 0; i < 20; i++ {
		if pub.Publish(&activitypb.BackendApiActivity{Client: "c"}) {
			accepted++
		}
	}
	if accepted > 5 || accepted < 4 {
		t.Fatalf("accepted %d of 20 with room for 4 (+1 in flight)", accepted)
	}
	st := pub.Stats()
	if st.Dropped != uint64(20-accepted) || st.Accepted != uint64(accepted) {
		t.Errorf("stats %+v", st)
	}
	close(em.gate)
	if err := pub.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(em.emitted()); got != accepted {
		t.Errorf("delivered %d events, accepted %d: Close must flush every accepted one", got, accepted)
	}
	if pub.Publish(&activitypb.BackendApiActivity{Client: "c"}) {
		t.Error("publish after close accepted")
	}
}

func TestReadyzReportsEmitterFailure(t *testing.T) {
	em := &fakeEmitter{err: errors.New("broker gone")}
	pub := api.NewPublisher(em, 8)
	defer pub.Close(context.Background())
	cr, _ := api.NewClientResolver(nil)
	srv, err := newAPI(fakeUsage{}, pub, cr)
	if err != nil {
		t.Fatal(err)
	}
	do(srv, "GET", "/healthz", "127.0.0.1:1", nil)
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		st := pub.Stats()
		return !pub.Healthy() && st.Retried > 0, fmt.Sprintf("healthy %v, retried %d; want a failed delivery", pub.Healthy(), st.Retried)
	})
	rec := do(srv, "GET", "/readyz", "127.0.0.1:1", nil)
	if rec.Code != http.StatusServiceUnavailable {
		t.Errorf("readyz = %d with a failing emitter, want 503", rec.Code)
	}
}

func TestPublisherRedeliversAfterOutage(t *testing.T) {
	em := &fakeEmitter{failFirst: 5}
	pub := api.NewPublisher(em, 64)
	const n = 20
	for i := 0; i < n; i++ {
		if !pub.Publish(&activitypb.BackendApiActivity{Client: "c"}) {
			t.Fatalf("event %d not accepted", i)
		}
	}
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		st := pub.Stats()
		return st.Delivered == n, fmt.Sprintf("delivered %d of %d (retried %d)", st.Delivered, n, st.Retried)
	})
	if err := pub.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := pub.Stats()
	if st.Retried != 5 || st.Failed != 0 || st.Dropped != 0 || len(em.emitted()) != n {
		t.Errorf("stats %+v, emitted %d; want every event delivered once after 5 retries", st, len(em.emitted()))
	}
	if !pub.Healthy() {
		t.Error("publisher unhealthy after deliveries resumed")
	}
}

// Until ready is closed (the schema is registered) nothing is emitted, and
// accepted events wait; afterwards they all go out.
func TestPublisherHoldsEventsUntilReady(t *testing.T) {
	em := &fakeEmitter{}
	ready := make(chan struct{})
	pub := api.NewPublisher(em, 16, api.HoldUntil(ready))
	for range 5 {
		if !pub.Publish(&activitypb.BackendApiActivity{Client: "c"}) {
			t.Fatal("not accepted")
		}
	}
	if st := pub.Stats(); st.Queued != 5 || len(em.emitted()) != 0 {
		t.Fatalf("before ready: stats %+v, %d emitted; want 5 queued, none emitted", st, len(em.emitted()))
	}
	close(ready)
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		return len(em.emitted()) == 5, fmt.Sprintf("%d of 5 events emitted", len(em.emitted()))
	})
	if err := pub.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A publisher that never became ready counts what it held as failed at
// shutdown instead of emitting it unframed.
func TestPublisherNeverReadyFailsHeldEventsAtClose(t *testing.T) {
	em := &fakeEmitter{}
	pub := api.NewPublisher(em, 16, api.HoldUntil(make(chan struct{})))
	pub.Publish(&activitypb.BackendApiActivity{Client: "c"})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := pub.Close(ctx); err == nil {
		t.Error("Close reported success with an event undelivered")
	}
	if st := pub.Stats(); st.Failed != 1 || len(em.emitted()) != 0 {
		t.Errorf("stats %+v, %d emitted; want 1 failed, none emitted", st, len(em.emitted()))
	}
}

// stuckEmitter accepts every event and never completes one, like a producer
// whose broker is down; Finish, like goka's, waits for them. release fails
// them all, as sarama eventually would.
type stuckEmitter struct {
	mu       sync.Mutex
	finish   []goka.PromiseFinisher
	released bool
	done     chan struct{} // closed by release
}

func (s *stuckEmitter) Emit(string, any) (*goka.Promise, error) {
	p, finish := goka.NewPromiseWithFinisher()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.released {
		finish(nil, errors.New("broker down"))
	} else {
		s.finish = append(s.finish, finish)
	}
	return p, nil
}

func (s *stuckEmitter) Finish() error {
	<-s.done
	return nil
}

func (s *stuckEmitter) release() {
	s.mu.Lock()
	fs := s.finish
	if !s.released {
		close(s.done)
	}
	s.finish, s.released = nil, true
	s.mu.Unlock()
	for _, f := range fs {
		f(nil, errors.New("broker down"))
	}
}

func TestPublisherCloseHonoursContextWhenInFlightIsFull(t *testing.T) {
	em := &stuckEmitter{done: make(chan struct{})}
	defer em.release() // let every goroutine end for goleak
	const extra = 10
	inFlight := api.MaxInFlight
	pub := api.NewPublisher(em, inFlight+extra+1)
	for i := 0; i < inFlight+extra+1; i++ {
		if !pub.Publish(&activitypb.BackendApiActivity{Client: "c"}) {
			t.Fatalf("event %d not accepted", i)
		}
	}
	// Every slot taken, one event held by the loop waiting for a slot.
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		st := pub.Stats()
		return st.InFlight == inFlight && st.Queued == extra,
			fmt.Sprintf("in flight %d of %d, queued %d, want %d", st.InFlight, inFlight, st.Queued, extra)
	})

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- pub.Close(ctx) }()
	// Generous: Close should return right after the 50 ms deadline.
	select {
	case err := <-closed:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close = %v, want an error wrapping the context's", err)
		}
	case <-time.After(10 * time.Second):
		em.release()
		<-closed
		t.Fatal("Close ignored its context while the in-flight slots were full")
	}
	// What never reached the producer failed; what is with it is settled
	// when the producer gives up.
	if st := pub.Stats(); st.Failed != extra+1 {
		t.Errorf("failed %d, want the %d events that never reached the producer", st.Failed, extra+1)
	}
	em.release()
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		st := pub.Stats()
		return st.Failed == uint64(inFlight+extra+1) && st.InFlight == 0, fmt.Sprintf("failed %d, in flight %d", st.Failed, st.InFlight)
	})
}

func TestRequestIDsMadeHereAreDistinctHex(t *testing.T) {
	srv, em, _ := newServer(t, fakeUsage{})
	seen := map[string]bool{}
	for range 100 {
		id := do(srv, "GET", "/healthz", "192.0.2.7:4000", nil).Header().Get("X-Request-Id")
		if len(id) != 16 || strings.Trim(id, "0123456789abcdef") != "" || seen[id] {
			t.Fatalf("request id %q: want 16 hex digits, new each time", id)
		}
		seen[id] = true
	}
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		n := len(em.emitted())
		return n == 100, fmt.Sprintf("%d of 100 events emitted", n)
	})
	for _, ev := range em.emitted() {
		if !seen[ev.RequestId] {
			t.Fatalf("event has request id %q, not one a response carried", ev.RequestId)
		}
	}
}

func TestHealthzSaysOK(t *testing.T) {
	srv, _, _ := newServer(t, fakeUsage{})
	rec := do(srv, "GET", "/healthz", "192.0.2.7:4000", nil)
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" || rec.Body.String() != "{\"status\":\"ok\"}\n" {
		t.Errorf("GET /healthz = %d %q %q, want 200 application/json {\"status\":\"ok\"}", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
}

func TestEventTimesTheRequest(t *testing.T) {
	srv, em, _ := newServer(t, fakeUsage{})
	before := time.Now()
	do(srv, "GET", "/healthz", "192.0.2.7:4000", nil)
	took := time.Since(before)
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		return len(em.emitted()) == 1, fmt.Sprintf("%d events emitted, want 1", len(em.emitted()))
	})
	ev := em.emitted()[0]
	if err := ev.GetRequestTime().CheckValid(); err != nil {
		t.Fatal(err)
	}
	// Wall clock only: the event's time has no monotonic reading.
	start, at := before.Round(0), ev.GetRequestTime().AsTime()
	if at.Before(start) || at.After(start.Add(took)) {
		t.Errorf("request time %v, want within [%v, %v]", at, start, start.Add(took))
	}
	if ev.DurationUs < 0 || ev.DurationUs > took.Microseconds() {
		t.Errorf("duration %d µs, want within [0, %d]", ev.DurationUs, took.Microseconds())
	}
}

// TestMethodNotAllowedSaysAllow: a 405 lists the methods the path has
// (RFC 9110 §15.5.6), also on escaped and trailing-slash paths.
func TestMethodNotAllowedSaysAllow(t *testing.T) {
	srv := openAPIServer(t)
	for path, want := range map[string]string{
		"/users":                           "GET, HEAD, POST",
		"/users/":                          "GET, HEAD, POST",
		"/users/01J0000000000000000000000": "GET, HEAD, PUT, PATCH, DELETE",
		"/usage":                           "GET, HEAD",
		"/endpoints/GET%20%2Fusers":        "GET, HEAD",
	} {
		rec := do(srv, "TRACE", path, "192.0.2.7:4000", nil)
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != want {
			t.Errorf("TRACE %s = %d, Allow %q; want 405, Allow %q", path, rec.Code, rec.Header().Get("Allow"), want)
		}
	}
}

// TestPathCleaning: empty and dot segments redirect to the clean path, but
// escaped slashes inside an endpoint segment are data, not separators.
func TestPathCleaning(t *testing.T) {
	srv := openAPIServer(t)
	rec := do(srv, "GET", "/users//x?limit=1", "192.0.2.7:4000", nil)
	if rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/users/x?limit=1" {
		t.Errorf("GET /users//x = %d, Location %q", rec.Code, rec.Header().Get("Location"))
	}
	if rec := do(srv, "GET", "/endpoints/GET%20%2F%2Fx%2F..", "192.0.2.7:4000", nil); rec.Code != http.StatusNotFound {
		t.Errorf("GET /endpoints/GET%%20%%2F%%2Fx%%2F.. = %d, want 404 (no such endpoint): %s", rec.Code, rec.Body)
	}
}

package middleware_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/middleware"
)

// recording is a Transport that keeps what it is given; with hold set it
// settles nothing until release is called.
type recording struct {
	mu     sync.Mutex
	events []*activitypb.BackendApiActivity
	keys   []string
	hold   bool
	held   []func()
}

func (r *recording) Produce(key string, msg any, done func(any, error)) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, msg.(*activitypb.BackendApiActivity))
	r.keys = append(r.keys, key)
	if r.hold {
		r.held = append(r.held, func() { done(msg, nil) })
		return nil
	}
	done(msg, nil)
	return nil
}

func (r *recording) Close() error { return nil }

// release settles every held event, later ones as they come.
func (r *recording) release() {
	r.mu.Lock()
	held := r.held
	r.held, r.hold = nil, false
	r.mu.Unlock()
	for _, done := range held {
		done()
	}
}

func (r *recording) got() []*activitypb.BackendApiActivity {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*activitypb.BackendApiActivity(nil), r.events...)
}

func closeNow(t *testing.T, m *middleware.Middleware) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func get(h http.Handler, target, remote string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, target, nil)
	req.RemoteAddr = remote
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// Routes come from the pattern Go's ServeMux matched, without its method
// and host, and requests it matched to no pattern are "(unmatched)".
func TestRouteFromServeMuxPattern(t *testing.T) {
	tr := &recording{}
	m := middleware.New(tr)
	sm := http.NewServeMux()
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	sm.Handle("GET /users/{id}", ok)
	sm.Handle("/static/", ok)
	sm.Handle("example.com/files/{path...}", ok)
	h := m.Wrap(sm)
	cases := []struct{ target, route string }{
		{"/users/42", "/users/{id}"},
		{"/static/app.js", "/static/"},
		{"http://example.com/files/a/b", "/files/{path...}"},
		{"/nothing/here", middleware.UnmatchedRoute},
	}
	for _, c := range cases {
		get(h, c.target, "192.0.2.1:1000")
	}
	closeNow(t, m)
	evs := tr.got()
	if len(evs) != len(cases) {
		t.Fatalf("%d events for %d requests", len(evs), len(cases))
	}
	for i, c := range cases {
		if evs[i].Route != c.route {
			t.Errorf("GET %s: route %q, want %q", c.target, evs[i].Route, c.route)
		}
	}
	if evs[3].HttpStatus != http.StatusNotFound {
		t.Errorf("unmatched request: status %d, want 404", evs[3].HttpStatus)
	}
}

// Routes come from the template gorilla/mux matched, with the middleware
// in the router (router.Use).
func TestRouteFromGorillaMux(t *testing.T) {
	tr := &recording{}
	m := middleware.New(tr)
	r := mux.NewRouter()
	r.Use(m.Wrap)
	r.HandleFunc("/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
	}).Methods(http.MethodGet)
	r.HandleFunc("/orders/{order}/items/{item}", func(w http.ResponseWriter, r *http.Request) {})
	get(r, "/users/42", "192.0.2.1:1000")
	get(r, "/orders/7/items/9", "192.0.2.1:1000")
	closeNow(t, m)
	evs := tr.got()
	if len(evs) != 2 {
		t.Fatalf("%d events, want 2", len(evs))
	}
	if evs[0].Route != "/users/{id}" || evs[0].Endpoint != "/users/42" || evs[0].HttpMethod != "GET" || evs[0].HttpStatus != http.StatusCreated {
		t.Errorf("first event %v, want GET /users/{id} (/users/42) 201", evs[0])
	}
	if evs[1].Route != "/orders/{order}/items/{item}" {
		t.Errorf("second event's route %q", evs[1].Route)
	}
}

// WrapRoute names the route itself.
func TestWrapRouteNamesTheRoute(t *testing.T) {
	tr := &recording{}
	m := middleware.New(tr)
	get(m.WrapRoute("/reports/{id}", http.NotFoundHandler()), "/reports/1", "192.0.2.1:1000")
	closeNow(t, m)
	if evs := tr.got(); len(evs) != 1 || evs[0].Route != "/reports/{id}" {
		t.Errorf("events %v, want one of route /reports/{id}", evs)
	}
}

// The client is the remote host unless WithClient names it, and SetClient
// from inside the handler wins where it is allowed; the address and the
// service are carried as configured.
func TestClientIdentity(t *testing.T) {
	fromHeader := func(r *http.Request) string { return r.Header.Get("X-Tenant") }
	setter := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c := r.Header.Get("X-Key-Owner"); c != "" {
			middleware.SetClient(r, c)
		}
	})
	cases := []struct {
		name        string
		opts        []middleware.Option
		header      []string
		client      string
		host, port  string
		wantService string
	}{
		{name: "remote host", client: "192.0.2.7", host: "192.0.2.7", port: "4000"},
		{name: "func", opts: []middleware.Option{middleware.WithClient(fromHeader)}, header: []string{"X-Tenant", "acme"}, client: "acme", host: "192.0.2.7", port: "4000"},
		{name: "func says nothing", opts: []middleware.Option{middleware.WithClient(fromHeader)}, client: "192.0.2.7", host: "192.0.2.7", port: "4000"},
		{name: "SetClient", opts: []middleware.Option{middleware.WithClient(fromHeader), middleware.WithSetClient()},
			header: []string{"X-Tenant", "acme", "X-Key-Owner", "billing"}, client: "billing", host: "192.0.2.7", port: "4000"},
		{name: "SetClient not allowed", header: []string{"X-Key-Owner", "billing"}, client: "192.0.2.7", host: "192.0.2.7", port: "4000"},
		{name: "address func and service", opts: []middleware.Option{
			middleware.WithClientAddress(func(r *http.Request) (string, string) { return "198.51.100.9", "" }),
			middleware.WithService("shop"),
		}, client: "198.51.100.9", host: "198.51.100.9", wantService: "shop"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := &recording{}
			m := middleware.New(tr, c.opts...)
			get(m.Wrap(setter), "/x", "192.0.2.7:4000", c.header...)
			closeNow(t, m)
			evs := tr.got()
			if len(evs) != 1 {
				t.Fatalf("%d events, want 1", len(evs))
			}
			ev := evs[0]
			if ev.Client != c.client || tr.keys[0] != c.client || ev.ClientHost != c.host || ev.ClientPort != c.port || ev.Service != c.wantService {
				t.Errorf("client %q (key %q), address %q:%q, service %q; want %q, %q:%q, %q",
					ev.Client, tr.keys[0], ev.ClientHost, ev.ClientPort, ev.Service, c.client, c.host, c.port, c.wantService)
			}
		})
	}
}

// A caller's well-formed request id is kept and echoed; others get one made
// here; with no header configured none is read or set.
func TestRequestIDs(t *testing.T) {
	tr := &recording{}
	m := middleware.New(tr)
	h := m.Wrap(http.NotFoundHandler())
	kept := get(h, "/", "192.0.2.1:1", "X-Request-Id", "abc-123")
	made := get(h, "/", "192.0.2.1:1", "X-Request-Id", strings.Repeat("x", 65))
	closeNow(t, m)
	if got := kept.Header().Get("X-Request-Id"); got != "abc-123" {
		t.Errorf("kept id echoed as %q", got)
	}
	id := made.Header().Get("X-Request-Id")
	if len(id) != 16 || id == strings.Repeat("x", 65) {
		t.Errorf("an id over 64 characters answered with %q, want one made here (16 hex digits)", id)
	}
	if evs := tr.got(); evs[0].RequestId != "abc-123" || evs[1].RequestId != id {
		t.Errorf("events' request ids %q, %q; want abc-123, %s", evs[0].RequestId, evs[1].RequestId, id)
	}

	tr = &recording{}
	m = middleware.New(tr, middleware.WithRequestIDHeader(""))
	w := get(m.Wrap(http.NotFoundHandler()), "/", "192.0.2.1:1", "X-Request-Id", "abc-123")
	closeNow(t, m)
	if ev := tr.got()[0]; w.Header().Get("X-Request-Id") != "" || ev.RequestId == "abc-123" || ev.RequestId == "" {
		t.Errorf("without a header: answered %q, event's id %q; want no header and an id made here", w.Header().Get("X-Request-Id"), ev.RequestId)
	}
}

// The event times the request: its request time is when the middleware
// took it, its duration until the handler returned.
func TestEventTimesTheRequest(t *testing.T) {
	tr := &recording{}
	m := middleware.New(tr)
	var inside time.Time
	before := time.Now()
	get(m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { inside = time.Now() })), "/", "192.0.2.1:1")
	after := time.Now()
	closeNow(t, m)
	ev := tr.got()[0]
	at := ev.RequestTime.AsTime()
	if at.Before(before) || at.After(inside) {
		t.Errorf("request time %v not between %v and the handler's %v", at, before, inside)
	}
	if d := time.Duration(ev.DurationUs) * time.Microsecond; d < 0 || d > after.Sub(before) {
		t.Errorf("duration %v outside 0..%v", d, after.Sub(before))
	}
}

// With the transport stuck and the buffer full, requests still return;
// what did not fit is counted as dropped, and logged once for the burst.
func TestNeverBlocksWhenTheBufferIsFull(t *testing.T) {
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), nil))
	tr := &recording{hold: true}
	const size, requests = 8, 5000
	m := middleware.New(tr, middleware.WithBufferSize(size), middleware.WithLogger(log))
	h := m.Wrap(http.NotFoundHandler())
	served := make(chan struct{})
	go func() {
		defer close(served)
		for range requests {
			get(h, "/", "192.0.2.1:1")
		}
	}()
	select {
	case <-served:
	case <-time.After(time.Minute):
		t.Fatal("requests blocked on a full buffer")
	}
	st := m.Stats()
	// Taken: MaxInFlight handed to the transport, what waits in the queue
	// and perhaps one the buffer's goroutine holds, waiting for a slot.
	if want := uint64(middleware.MaxInFlight + size); st.Accepted < want || st.Accepted > want+1 || st.Accepted+st.Dropped != requests {
		t.Errorf("stats %+v, want %d (or one more) accepted and the others dropped", st, want)
	}
	logMu.Lock()
	warnings := strings.Count(logs.String(), "activity events dropped")
	logMu.Unlock()
	if warnings != 1 {
		t.Errorf("%d drop warnings for one burst, want 1:\n%s", warnings, logs.String())
	}
	tr.release()
	closeNow(t, m)
	if st := m.Stats(); st.Delivered != st.Accepted || st.Failed != 0 {
		t.Errorf("stats %+v after release and Close, want every accepted event delivered", st)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Close waits for the transport to settle every accepted event.
func TestCloseDeliversEverythingAccepted(t *testing.T) {
	tr := &recording{hold: true}
	m := middleware.New(tr, middleware.WithBufferSize(64))
	h := m.Wrap(http.NotFoundHandler())
	const n = 50
	for range n {
		get(h, "/", "192.0.2.1:1")
	}
	closed := make(chan error, 1)
	go func() { closed <- m.Close(context.Background()) }()
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		return len(tr.got()) == n, fmt.Sprintf("%d of %d events with the transport", len(tr.got()), n)
	})
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) with events unsettled", err)
	default:
	}
	tr.release()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if st := m.Stats(); st.Accepted != n || st.Delivered != n || st.Dropped != 0 {
		t.Errorf("stats %+v, want %d accepted and delivered", st, n)
	}
	// Once closed, requests are still served; their events are dropped.
	if w := get(h, "/", "192.0.2.1:1"); w.Code != http.StatusNotFound {
		t.Errorf("request after Close answered %d", w.Code)
	}
	if st := m.Stats(); st.Dropped != 1 {
		t.Errorf("dropped %d after Close, want 1", st.Dropped)
	}
}

// A handler that takes over the connection (a WebSocket upgrade) can, and
// its call is recorded as 101.
func TestHijackThroughTheMiddleware(t *testing.T) {
	tr := &recording{}
	m := middleware.New(tr)
	hs := httptest.NewServer(m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hj, ok := w.(http.Hijacker)
		if !ok {
			t.Error("the middleware's writer is no http.Hijacker")
			return
		}
		conn, rw, err := hj.Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n")
		_ = rw.Flush()
	})))
	defer hs.Close()
	req, _ := http.NewRequest(http.MethodGet, hs.URL, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Errorf("status %d, want 101", resp.StatusCode)
	}
	closeNow(t, m)
	if evs := tr.got(); len(evs) != 1 || evs[0].HttpStatus != http.StatusSwitchingProtocols {
		t.Errorf("events %v, want one of status 101", evs)
	}
}

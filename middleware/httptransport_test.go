package middleware_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/auth"
	"github.com/inarious/inarious/internal/otlpin"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/middleware"
)

// eventsServer is a POST /events that answers each request as answer says
// for its attempt number (from 1), counting the ids of the batches it
// takes once each, as a deduplicating server does.
type eventsServer struct {
	t      *testing.T
	answer func(attempt int, ids []string, w http.ResponseWriter) (taken bool)

	mu       sync.Mutex
	attempts [][]string     // the ids of each request
	counted  map[string]int // per id, how often a taken batch held it
	key      string         // the last X-API-Key
}

func (s *eventsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.t.Error(err)
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		s.t.Errorf("%s with Content-Type %q", r.Method, r.Header.Get("Content-Type"))
	}
	var items []map[string]any
	if err := json.Unmarshal(body, &items); err != nil {
		s.t.Errorf("body %s: %v", body, err)
	}
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i], _ = it["id"].(string)
		if ids[i] == "" || it["httpMethod"] != "GET" {
			s.t.Errorf("item %v: no id, or not the event sent", it)
		}
	}
	s.mu.Lock()
	s.attempts = append(s.attempts, ids)
	attempt := len(s.attempts)
	s.key = r.Header.Get("X-API-Key")
	s.mu.Unlock()
	if s.answer(attempt, ids, w) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.counted == nil {
			s.counted = map[string]int{}
		}
		for _, id := range ids {
			s.counted[id]++
		}
	}
}

func (s *eventsServer) snapshot() (attempts [][]string, counted map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.attempts), maps.Clone(s.counted)
}

func accept(w http.ResponseWriter, n int) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"accepted":%d,"rejected":0,"errors":[]}`, n)
}

// waits records the transport's pauses instead of waiting them.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) wait(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.d = append(w.d, d)
	return ctx.Err()
}

func (w *waits) got() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.d)
}

// sendN puts n events through a middleware over tr, then closes it.
func sendN(t *testing.T, tr middleware.Transport, n int) *middleware.Middleware {
	t.Helper()
	m := middleware.New(tr, middleware.WithLogger(slog.New(slog.DiscardHandler)))
	h := m.Wrap(http.NotFoundHandler())
	for range n {
		get(h, "/", "192.0.2.1:1")
	}
	closeNow(t, m)
	return m
}

// 429 and 503 are retried after the Retry-After they carry, a 502 after a
// backoff; the batch is kept with its ids, so every event is taken exactly
// once, under an id no other event has.
func TestHTTPTransportRetriesHonoringRetryAfter(t *testing.T) {
	srv := &eventsServer{t: t, answer: func(attempt int, ids []string, w http.ResponseWriter) bool {
		switch attempt {
		case 1:
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusTooManyRequests)
		case 2:
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusServiceUnavailable)
		case 3:
			w.WriteHeader(http.StatusBadGateway)
		default:
			accept(w, len(ids))
			return true
		}
		return false
	}}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	var paused waits
	const n = 30
	m := sendN(t, middleware.NewHTTPTransport(hs.URL+"/events", middleware.HTTPAPIKey("shop-key"),
		middleware.HTTPBatch(n, 0), middleware.HTTPLinger(time.Hour), middleware.HTTPWait(paused.wait)), n)

	attempts, counted := srv.snapshot()
	if len(attempts) != 4 {
		t.Fatalf("%d requests (%v), want 4 (429, 503, 502, 200)", len(attempts), attempts)
	}
	for i, ids := range attempts[1:] {
		if !slices.Equal(ids, attempts[0]) {
			t.Errorf("attempt %d sent ids %v, the first %v: a retry must send the same batch", i+2, ids, attempts[0])
		}
	}
	if len(counted) != n {
		t.Errorf("%d distinct ids taken, want %d", len(counted), n)
	}
	for id, c := range counted {
		if c != 1 {
			t.Errorf("id %s taken %d times", id, c)
		}
	}
	w := paused.got()
	if len(w) != 3 || w[0] != 3*time.Second || w[1] != 7*time.Second || w[2] <= 0 || w[2] > time.Second {
		t.Errorf("pauses %v, want 3s and 7s (Retry-After), then a backoff under a second", w)
	}
	if st := m.Stats(); st.Delivered != n || st.Failed != 0 || st.Rejected != 0 {
		t.Errorf("stats %+v, want %d delivered", st, n)
	}
	if srv.key != "shop-key" {
		t.Errorf("X-API-Key %q, want shop-key", srv.key)
	}
}

// A batch whose answer is lost after the server took it is sent again with
// the same ids, so a deduplicating server counts it once.
func TestHTTPTransportResendsALostAnswerWithTheSameIDs(t *testing.T) {
	srv := &eventsServer{t: t}
	srv.answer = func(attempt int, ids []string, w http.ResponseWriter) bool {
		if attempt == 1 {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return true
			}
			_ = conn.Close() // taken, but the answer is lost
			return true
		}
		accept(w, len(ids))
		return true
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	var paused waits
	const n = 10
	sendN(t, middleware.NewHTTPTransport(hs.URL, middleware.HTTPBatch(n, 0), middleware.HTTPLinger(time.Hour),
		middleware.HTTPWait(paused.wait)), n)
	attempts, _ := srv.snapshot()
	if len(attempts) != 2 || !slices.Equal(attempts[0], attempts[1]) {
		t.Fatalf("requests %v, want the same batch twice", attempts)
	}
	// The lost attempt's handler counts after closing the connection, so
	// possibly after the transport has its answer to the second.
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		_, counted := srv.snapshot()
		if len(counted) != n {
			return false, fmt.Sprintf("%d distinct ids, want %d", len(counted), n)
		}
		for id, c := range counted {
			if c != 2 {
				return false, fmt.Sprintf("id %s received %d times, want twice: once lost, once answered", id, c)
			}
		}
		return true, ""
	})
}

// Items the server rejects, and batches it answers with 400, are settled
// as rejected and not sent again; a 413 splits the batch.
func TestHTTPTransportRejectionsAndSplits(t *testing.T) {
	for _, c := range []struct {
		name                string
		answer              func(w http.ResponseWriter)
		delivered, rejected uint64
	}{
		{"rejected items", func(w http.ResponseWriter) {
			fmt.Fprint(w, `{"accepted":4,"rejected":1,"errors":[{"index":1,"error":"without httpMethod"}]}`)
		}, 4, 1},
		{"400", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"title":"Bad Request","status":400,"detail":"no"}`)
		}, 0, 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := &eventsServer{t: t, answer: func(_ int, _ []string, w http.ResponseWriter) bool {
				c.answer(w)
				return true
			}}
			hs := httptest.NewServer(srv)
			defer hs.Close()
			m := sendN(t, middleware.NewHTTPTransport(hs.URL, middleware.HTTPBatch(5, 0), middleware.HTTPLinger(time.Hour)), 5)
			if attempts, _ := srv.snapshot(); len(attempts) != 1 {
				t.Errorf("%d requests, want 1", len(attempts))
			}
			if st := m.Stats(); st.Delivered != c.delivered || st.Rejected != c.rejected || st.Retried != 0 {
				t.Errorf("stats %+v, want %d delivered, %d rejected, none retried", st, c.delivered, c.rejected)
			}
		})
	}
	t.Run("413", func(t *testing.T) {
		srv := &eventsServer{t: t, answer: func(attempt int, ids []string, w http.ResponseWriter) bool {
			if len(ids) > 2 {
				w.WriteHeader(http.StatusRequestEntityTooLarge)
				return false
			}
			accept(w, len(ids))
			return true
		}}
		hs := httptest.NewServer(srv)
		defer hs.Close()
		const n = 9
		m := sendN(t, middleware.NewHTTPTransport(hs.URL, middleware.HTTPBatch(n, 0), middleware.HTTPLinger(time.Hour)), n)
		_, counted := srv.snapshot()
		if len(counted) != n {
			t.Errorf("%d ids taken, want %d", len(counted), n)
		}
		for id, c := range counted {
			if c != 1 {
				t.Errorf("id %s taken %d times", id, c)
			}
		}
		if st := m.Stats(); st.Delivered != n {
			t.Errorf("stats %+v, want %d delivered", st, n)
		}
	})
}

// Against Inarious' own API: the batches pass its parsing and its
// events:write scope, and arrive as the events the middleware made, under
// the client's name.
func TestHTTPTransportToInariousAPI(t *testing.T) {
	keys, err := auth.Parse(strings.NewReader("shop:events:write:"+auth.Hash("shop-key")), "test")
	if err != nil {
		t.Fatal(err)
	}
	inariousEvents := &recording{}
	pub := api.NewEventPublisher(inariousEvents, 1024)
	defer func() { _ = pub.Close(context.Background()) }()
	cr, err := api.NewClientResolver(nil)
	if err != nil {
		t.Fatal(err)
	}
	inarious, err := api.New(pub, cr, api.WithAPIKeys(keys),
		api.WithRoutes(otlpin.Routes(pub, otlpin.WithLogger(slog.New(slog.DiscardHandler)))...))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(inarious)
	defer hs.Close()

	m := middleware.New(middleware.NewHTTPTransport(hs.URL+otlpin.EventsPath, middleware.HTTPAPIKey("shop-key"), middleware.HTTPLinger(time.Millisecond)),
		middleware.WithService("shop"), middleware.WithClient(func(r *http.Request) string { return r.Header.Get("X-Tenant") }))
	sm := http.NewServeMux()
	sm.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {})
	h := m.Wrap(sm)
	const n = 25
	for i := range n {
		get(h, fmt.Sprintf("/orders/%d", i), "192.0.2.1:1", "X-Tenant", "acme")
	}
	closeNow(t, m)
	if st := m.Stats(); st.Delivered != n {
		t.Fatalf("stats %+v, want %d delivered", st, n)
	}
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		var orders int
		for _, ev := range inariousEvents.got() {
			if codecs.EndpointKey(ev) == "shop: GET /orders/{id}" {
				orders++
			}
		}
		return orders == n, fmt.Sprintf("%d of %d events in Inarious", orders, n)
	})
	for _, ev := range inariousEvents.got() {
		if codecs.EndpointKey(ev) != "shop: GET /orders/{id}" {
			continue // the POST /events calls themselves, counted under the key's client
		}
		if ev.Client != "acme" || ev.Service != "shop" || ev.HttpStatus != 200 || ev.RequestId == "" || !strings.HasPrefix(ev.Endpoint, "/orders/") {
			t.Errorf("event %v, want acme's call of shop's GET /orders/{id}", ev)
			break
		}
	}
}

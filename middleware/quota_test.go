package middleware_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/problem"
	"github.com/inarious/inarious/internal/quotas"
	"github.com/inarious/inarious/internal/quotas/enforce"
	"github.com/inarious/inarious/internal/quotas/quotahttp"
	"github.com/inarious/inarious/internal/quotas/quotastest"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/middleware"
)

// usageTable is Inarious' windowed usage table in memory, fed by the
// middleware's events (it is their Transport): an event counts once it is
// older than delay, as the table trails the calls. delay < 0: never.
type usageTable struct {
	delay  time.Duration
	mu     sync.Mutex
	events []tableEvent
}

type tableEvent struct {
	client, endpoint string
	status           int32
	at, arrived      time.Time
}

func (u *usageTable) Produce(key string, msg any, done func(any, error)) error {
	ev := msg.(*activitypb.BackendApiActivity)
	u.mu.Lock()
	u.events = append(u.events, tableEvent{client: key, endpoint: codecs.ServiceEndpointKey(ev.Service, ev.HttpMethod+" "+ev.Route),
		status: ev.HttpStatus, at: ev.RequestTime.AsTime(), arrived: time.Now()})
	u.mu.Unlock()
	done(msg, nil)
	return nil
}

func (u *usageTable) Close() error { return nil }

func (u *usageTable) Series(client string, step time.Duration, from, _ time.Time) ([]windows.Bucket, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	b := windows.Bucket{Start: from, Step: step, Endpoints: map[string]uint64{}}
	for _, ev := range u.events {
		if ev.client == client && !ev.at.Before(from) && ev.at.Before(from.Add(step)) && u.delay >= 0 && time.Since(ev.arrived) >= u.delay {
			b.Total++
			b.Endpoints[ev.endpoint]++
		}
	}
	return []windows.Bucket{b}, nil
}

// inarious is a stand-in Inarious server: its real /quotas routes over
// policies in memory and the usage table, counting the checks asked.
type inarious struct {
	*httptest.Server
	checks atomic.Int64
}

func newInarious(t *testing.T, table *usageTable, policies ...*quotas.Policy) *inarious {
	t.Helper()
	store := quotastest.NewStore(policies...)
	lim := enforce.New(store, table, enforce.Config{Refresh: time.Nanosecond, Replicas: 1})
	r := mux.NewRouter()
	httpx.Mount(r, quotahttp.Routes(store, lim, windows.Default()))
	in := &inarious{}
	in.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		in.checks.Add(1)
		r.ServeHTTP(w, req)
	}))
	t.Cleanup(in.Close)
	return in
}

func policy(client string, limits ...quotas.Limit) *quotas.Policy {
	return &quotas.Policy{Client: client, Limits: limits, Updated: time.Unix(1, 0)}
}

// shop is a service's routes, counting the calls its handlers served.
func shop(served *atomic.Int64) *http.ServeMux {
	routes := http.NewServeMux()
	routes.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) { served.Add(1) })
	routes.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) { served.Add(1) })
	return routes
}

func TestQuotasRefuseOverQuotaCallsWith429AndHeaders(t *testing.T) {
	table := &usageTable{}
	in := newInarious(t, table, policy(quotas.Default,
		quotas.Limit{Window: "1h", Limit: 3, Service: "shop"},
		quotas.Limit{Window: "1h", Limit: 1, Service: "shop", Endpoint: "POST /orders"},
		quotas.Limit{Window: "1h", Limit: 0, Service: "billing"}))
	m := middleware.New(table, middleware.WithService("shop"), middleware.WithQuotas(in.URL, middleware.QuotaTimeout(10*time.Second)))
	defer closeNow(t, m)
	var served atomic.Int64
	h := m.Wrap(shop(&served))

	first := get(h, "/orders/1", "10.0.0.1:5000")
	if first.Code != http.StatusOK || first.Header().Get("RateLimit-Policy") != `"1h shop";q=3;w=3600` ||
		!strings.HasPrefix(first.Header().Get("RateLimit"), `"1h shop";r=2;t=`) {
		t.Fatalf("first call: %d %v, want 200 with 2 calls left", first.Code, first.Header())
	}
	post := httptest.NewRequest(http.MethodPost, "/orders", nil)
	post.RemoteAddr = "10.0.0.1:5000"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, post)
	if rec.Code != http.StatusOK || rec.Header().Get("RateLimit-Policy") != `"1h shop";q=3;w=3600, "1h shop POST /orders";q=1;w=3600` {
		t.Errorf("POST /orders: %d %v, want 200 under shop's and the endpoint's limits", rec.Code, rec.Header())
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, post)
	if rec.Code != http.StatusTooManyRequests || !strings.Contains(rec.Body.String(), "1 calls of POST /orders per 1h") {
		t.Errorf("second POST /orders: %d %s, want 429 by the endpoint's limit", rec.Code, rec.Body)
	}
	get(h, "/orders/2", "10.0.0.1:5000")
	refused := get(h, "/orders/3", "10.0.0.1:5000")
	if refused.Code != http.StatusTooManyRequests || refused.Header().Get("Content-Type") != problem.ContentType ||
		refused.Header().Get("Retry-After") == "" || !strings.HasPrefix(refused.Header().Get("RateLimit"), `"1h shop";r=0;t=`) {
		t.Errorf("past shop's 3 calls: %d %v, want 429 with Retry-After and RateLimit", refused.Code, refused.Header())
	}
	if other := get(h, "/orders/1", "10.0.0.2:5000"); other.Code != http.StatusOK {
		t.Errorf("another client: %d, want 200 (its quota is its own)", other.Code)
	}
	if n := served.Load(); n != 4 {
		t.Errorf("the handlers served %d calls, want 4 (the refused ones never reach them)", n)
	}
	if s := m.QuotaStats(); s.Allowed != 4 || s.Refused != 2 {
		t.Errorf("stats %+v, want 4 allowed, 2 refused", s)
	}
	closeNow(t, m)
	var statuses []int32
	for _, ev := range table.events {
		statuses = append(statuses, ev.status)
	}
	if fmt.Sprint(statuses) != "[200 200 429 200 429 200]" {
		t.Errorf("events' statuses %v: every call is counted, the refused ones as 429", statuses)
	}
}

// burst sends n calls of client from 8 goroutines, and counts the allowed.
func burst(h http.Handler, client string, n int) int {
	var ok atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := g; i < n; i += 8 {
				if get(h, "/orders/1", client+":5000").Code == http.StatusOK {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(ok.Load())
}

// hourOf guards a test against an hour's end, which starts every limit afresh.
func sameHour(t *testing.T, start time.Time) {
	t.Helper()
	if start.Truncate(time.Hour) != time.Now().Truncate(time.Hour) {
		t.Skip("an hour ended during the test; its windows started afresh")
	}
}

// Between checks, the calls admitted here count on top of the last answer:
// while the table trails by less than the lag, a burst of 20 times the
// limit gets exactly the limit through, however often Inarious is asked.
func TestQuotaBurstGetsExactlyTheLimitThrough(t *testing.T) {
	start := time.Now()
	table := &usageTable{delay: 20 * time.Millisecond}
	in := newInarious(t, table, policy(quotas.Default, quotas.Limit{Window: "1h", Limit: 50}))
	m := middleware.New(table, middleware.WithService("shop"), middleware.WithQuotas(in.URL,
		middleware.QuotaRefresh(time.Millisecond), middleware.QuotaLag(10*time.Second), middleware.QuotaTimeout(10*time.Second)))
	defer closeNow(t, m)
	var served atomic.Int64
	got := burst(m.Wrap(shop(&served)), "10.0.0.1", 1000)
	sameHour(t, start)
	if got != 50 || served.Load() != 50 {
		t.Errorf("%d of 1,000 calls allowed (%d served), want the limit, 50", got, served.Load())
	}
	if in.checks.Load() < 2 {
		t.Errorf("%d checks, want several (refresh 1 ms)", in.checks.Load())
	}
}

// The answers are kept for the refresh: one check per client, not per call.
// A table that never shows the calls is the worst case: each replica
// still admits no more than the last answer left, so two replicas admit
// at most twice the limit (the limit plus the other's reservation).
func TestQuotaAnswersAreCachedAndEachReplicaReservesWhatItAdmits(t *testing.T) {
	start := time.Now()
	table := &usageTable{delay: -1}
	in := newInarious(t, table, policy(quotas.Default, quotas.Limit{Window: "1h", Limit: 30}))
	var served atomic.Int64
	replica := func() (*middleware.Middleware, http.Handler) {
		m := middleware.New(table, middleware.WithService("shop"), middleware.WithQuotas(in.URL,
			middleware.QuotaRefresh(time.Hour), middleware.QuotaLag(time.Hour), middleware.QuotaTimeout(10*time.Second)))
		return m, m.Wrap(shop(&served))
	}
	m1, h1 := replica()
	defer closeNow(t, m1)
	m2, h2 := replica()
	defer closeNow(t, m2)
	got1 := burst(h1, "10.0.0.1", 200)
	if n := in.checks.Load(); n != 1 {
		t.Errorf("%d checks for 200 calls of one client within the refresh, want 1", n)
	}
	got2 := burst(h2, "10.0.0.1", 200)
	sameHour(t, start)
	if got1 != 30 || got2 != 30 {
		t.Errorf("replicas admitted %d and %d, want 30 each: never past what their answer left", got1, got2)
	}
}

// unreachable is the address of a server that is gone.
func unreachable(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "http://" + addr
}

// With Inarious unreachable, quotas fail open by default: calls are served,
// the failed checks counted and the outage logged once; QuotaFailClosed
// answers 503 with Retry-After instead.
func TestQuotasFailOpenOrClosedWhenInariousIsUnreachable(t *testing.T) {
	for _, closed := range []bool{false, true} {
		var logs bytes.Buffer
		opts := []middleware.QuotaOption{middleware.QuotaRefresh(time.Nanosecond)}
		if closed {
			opts = append(opts, middleware.QuotaFailClosed())
		}
		m := middleware.New(&recording{}, middleware.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))),
			middleware.WithQuotas(unreachable(t), opts...))
		var served atomic.Int64
		h := m.Wrap(shop(&served))
		codes := map[int]int{}
		for i := range 10 {
			rec := get(h, "/orders/1", fmt.Sprintf("10.0.0.%d:5000", i%3))
			codes[rec.Code]++
			if closed && rec.Header().Get("Retry-After") != "1" {
				t.Errorf("fail closed: Retry-After %q, want 1", rec.Header().Get("Retry-After"))
			}
		}
		closeNow(t, m)
		want, wantServed := map[int]int{http.StatusOK: 10}, int64(10)
		if closed {
			want, wantServed = map[int]int{http.StatusServiceUnavailable: 10}, 0
		}
		if fmt.Sprint(codes) != fmt.Sprint(want) || served.Load() != wantServed {
			t.Errorf("closed=%v: answers %v, %d served; want %v", closed, codes, served.Load(), want)
		}
		s := m.QuotaStats()
		if s.CheckErrors != 10 || (closed && s.Unavailable != 10) {
			t.Errorf("closed=%v: stats %+v, want 10 failed checks", closed, s)
		}
		if n := strings.Count(logs.String(), "reads fail"); n != 1 {
			t.Errorf("closed=%v: the outage logged %d times, want once:\n%s", closed, n, logs.String())
		}
	}
}

// A check that does not answer holds a request no longer than its
// timeout: the call is then decided as if Inarious were down.
func TestQuotaCheckTimesOut(t *testing.T) {
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hung.Close()
	defer close(release)
	m := middleware.New(&recording{}, middleware.WithQuotas(hung.URL, middleware.QuotaTimeout(50*time.Millisecond)))
	defer closeNow(t, m)
	var served atomic.Int64
	if rec := get(m.Wrap(shop(&served)), "/orders/1", "10.0.0.1:5000"); rec.Code != http.StatusOK || served.Load() != 1 {
		t.Errorf("a call whose check hangs: %d, want served (fail open) once the check timed out", rec.Code)
	}
	if s := m.QuotaStats(); s.CheckErrors != 1 {
		t.Errorf("stats %+v, want the timed-out check counted", s)
	}
}

// The check the middleware sends is the documented one, and a client
// without a policy is let through without headers.
func TestQuotaCheckRequest(t *testing.T) {
	var got *http.Request
	in := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		_ = json.NewEncoder(w).Encode(quotahttp.Check{Client: "a b", Allowed: true, Limits: []quotahttp.CheckLimit{}})
	}))
	defer in.Close()
	m := middleware.New(&recording{}, middleware.WithService("shop"), middleware.WithQuotas(in.URL+"/", middleware.QuotaAPIKey("k1"),
		middleware.QuotaTimeout(10*time.Second)), middleware.WithClient(func(r *http.Request) string { return r.Header.Get("X-Tenant") }))
	defer closeNow(t, m)
	var served atomic.Int64
	rec := get(m.Wrap(shop(&served)), "/orders/1", "10.0.0.1:5000", "X-Tenant", "a b/c")
	if rec.Code != http.StatusOK || rec.Header().Get("RateLimit") != "" {
		t.Errorf("no policy: %d %v, want 200 without RateLimit", rec.Code, rec.Header())
	}
	if got == nil || got.URL.EscapedPath() != "/quotas/a%20b%2Fc/check" || got.URL.Query().Get("service") != "shop" ||
		got.URL.Query().Get("all") != "true" || got.URL.Query().Get("reserve") != "false" || got.Header.Get("X-API-Key") != "k1" {
		t.Errorf("check sent: %v", got)
	}
}

package enforce_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/quotas"
	"github.com/inarious/inarious/internal/quotas/enforce"
	"github.com/inarious/inarious/internal/windows"
)

// policies is a policy table in memory.
type policies map[string]*quotas.Policy

func (p policies) Get(client string) (*quotas.Policy, error) { return p[client], nil }

// usage is the windowed table in memory: per client and step, the count of
// the current window, total and per endpoint.
type usage struct {
	mu     sync.Mutex
	counts map[string]map[string]uint64 // client → endpoint ("" = total) → count
	reads  int
}

func (u *usage) set(client, endpoint string, n uint64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.counts == nil {
		u.counts = map[string]map[string]uint64{}
	}
	if u.counts[client] == nil {
		u.counts[client] = map[string]uint64{}
	}
	u.counts[client][endpoint] = n
}

func (u *usage) Series(client string, step time.Duration, from, to time.Time) ([]windows.Bucket, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.reads++
	c := u.counts[client]
	if c == nil {
		return nil, nil
	}
	b := windows.Bucket{Start: from, Step: step, Total: c[""], Endpoints: map[string]uint64{}}
	for ep, n := range c {
		if ep != "" {
			b.Endpoints[ep] = n
		}
	}
	return []windows.Bucket{b}, nil
}

// clock is a settable time.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func policy(client string, limits ...quotas.Limit) *quotas.Policy {
	return &quotas.Policy{Client: client, Limits: limits, Updated: time.Unix(1, 0)}
}

// t0 is 10 s into a minute.
var t0 = time.Date(2025, 6, 1, 12, 0, 10, 0, time.UTC)

func newLimiter(p policies, u *usage, cfg enforce.Config) (*enforce.Limiter, *clock) {
	c := &clock{t: t0}
	return enforce.New(p, u, cfg, enforce.WithNow(c.now)), c
}

// admitted counts the calls allowed out of n.
func admitted(l *enforce.Limiter, client, endpoint string, n int) int {
	ok := 0
	for range n {
		if l.Decide(client, "", endpoint, true).Allowed {
			ok++
		}
	}
	return ok
}

func TestNoPolicyAllowsWithoutLimits(t *testing.T) {
	l, _ := newLimiter(policies{}, &usage{}, enforce.DefaultConfig())
	d := l.Decide("alice", "", "GET /x", true)
	if !d.Allowed || d.Policy != "" || len(d.Limits) != 0 {
		t.Errorf("decision = %+v, want allowed with no limits", d)
	}
}

// The reservation holds the line while the table shows none of the calls:
// exactly the limit is admitted.
func TestReservationAdmitsExactlyTheLimitBeforeTheTableShowsAny(t *testing.T) {
	l, _ := newLimiter(policies{"alice": policy("alice", quotas.Limit{Window: "1m", Limit: 5})}, &usage{}, enforce.DefaultConfig())
	if got := admitted(l, "alice", "GET /x", 20); got != 5 {
		t.Errorf("admitted %d of 20, want 5", got)
	}
	d := l.Decide("alice", "", "GET /x", true)
	if d.Allowed || d.RetryAfter != 50*time.Second || d.Limits[0].Remaining != 0 || d.Limits[0].ResetSeconds != 50 {
		t.Errorf("decision = %+v, want refused, retry after the minute's last 50 s", d)
	}
}

func TestDefaultPolicyAppliesToClientsWithoutTheirOwn(t *testing.T) {
	p := policies{
		quotas.Default: policy(quotas.Default, quotas.Limit{Window: "1m", Limit: 2}),
		"bob":          policy("bob", quotas.Limit{Window: "1m", Limit: 3}),
	}
	l, _ := newLimiter(p, &usage{}, enforce.DefaultConfig())
	if got := admitted(l, "alice", "GET /x", 10); got != 2 {
		t.Errorf("alice (default) admitted %d, want 2", got)
	}
	if got := admitted(l, "carol", "GET /x", 10); got != 2 {
		t.Errorf("carol (default, counted apart from alice) admitted %d, want 2", got)
	}
	if got := admitted(l, "bob", "GET /x", 10); got != 3 {
		t.Errorf("bob (own policy) admitted %d, want 3", got)
	}
	if d := l.Decide("alice", "", "GET /x", false); d.Policy != quotas.Default {
		t.Errorf("alice's policy = %q, want the default", d.Policy)
	}
}

// Calls admitted within the lag before a read count on top of the table's
// count; once older than the lag, only the table's count stands.
func TestAdmittedCallsCountUntilTheLagHasPassed(t *testing.T) {
	u := &usage{}
	cfg := enforce.Config{Refresh: 100 * time.Millisecond, Lag: time.Second, Replicas: 1}
	l, c := newLimiter(policies{"alice": policy("alice", quotas.Limit{Window: "1m", Limit: 10})}, u, cfg)
	if got := admitted(l, "alice", "GET /x", 4); got != 4 {
		t.Fatalf("admitted %d, want 4", got)
	}
	u.set("alice", "", 4) // the table shows them
	c.add(200 * time.Millisecond)
	if d := l.Decide("alice", "", "GET /x", false); d.Limits[0].Remaining != 2 {
		t.Errorf("within the lag: remaining %d, want 2 (4 in the table, 4 admitted here counted again)", d.Limits[0].Remaining)
	}
	c.add(1500 * time.Millisecond)
	if d := l.Decide("alice", "", "GET /x", false); d.Limits[0].Remaining != 6 {
		t.Errorf("after the lag: remaining %d, want 6 (the table's 4 only)", d.Limits[0].Remaining)
	}
	// Calls other replicas admitted show in the table.
	u.set("alice", "", 9)
	c.add(200 * time.Millisecond)
	if got := admitted(l, "alice", "GET /x", 5); got != 1 {
		t.Errorf("admitted %d with 9 of 10 in the table, want 1", got)
	}
}

// With Replicas, each call not yet in the table counts for every replica.
func TestReplicasCountOwnCallsForEachReplica(t *testing.T) {
	cfg := enforce.DefaultConfig()
	cfg.Replicas = 4
	l, _ := newLimiter(policies{"alice": policy("alice", quotas.Limit{Window: "1m", Limit: 10})}, &usage{}, cfg)
	if got := admitted(l, "alice", "GET /x", 10); got != 3 {
		t.Errorf("admitted %d, want 3 (used 0, 4, 8 < 10)", got)
	}
}

func TestEndpointLimitAppliesToItsEndpointOnly(t *testing.T) {
	p := policies{"alice": policy("alice",
		quotas.Limit{Window: "1m", Limit: 100},
		quotas.Limit{Window: "1m", Limit: 2, Endpoint: "POST /users"},
		quotas.Limit{Window: "1m", Limit: 0, Service: "shop"})} // not enforced yet
	l, _ := newLimiter(p, &usage{}, enforce.DefaultConfig())
	if got := admitted(l, "alice", "POST /users", 5); got != 2 {
		t.Errorf("POST /users admitted %d, want 2", got)
	}
	d := l.Decide("alice", "", "GET /users", true)
	if !d.Allowed || len(d.Limits) != 1 || d.Limits[0].Remaining != 97 {
		t.Errorf("GET /users: %+v, want allowed under the 100 limit only, 97 remaining", d)
	}
	refused := l.Decide("alice", "", "POST /users", true)
	if refused.Allowed || len(refused.Limits) != 2 || refused.Limits[1].Remaining != 0 {
		t.Errorf("POST /users: %+v, want refused by its own limit", refused)
	}
}

func TestTableCountOfEndpointIsRead(t *testing.T) {
	u := &usage{}
	u.set("alice", "POST /users", 7)
	u.set("alice", "", 7)
	l, _ := newLimiter(policies{"alice": policy("alice", quotas.Limit{Window: "1h", Limit: 8, Endpoint: "POST /users"})}, u, enforce.DefaultConfig())
	if got := admitted(l, "alice", "POST /users", 3); got != 1 {
		t.Errorf("admitted %d with 7 of 8 in the table, want 1", got)
	}
}

func TestNewWindowStartsAfresh(t *testing.T) {
	u := &usage{}
	l, c := newLimiter(policies{"alice": policy("alice", quotas.Limit{Window: "1m", Limit: 3})}, u, enforce.DefaultConfig())
	if got := admitted(l, "alice", "GET /x", 5); got != 3 {
		t.Fatalf("admitted %d, want 3", got)
	}
	c.add(50 * time.Second) // the next minute, which the table has not counted
	if got := admitted(l, "alice", "GET /x", 5); got != 3 {
		t.Errorf("next minute admitted %d, want 3", got)
	}
}

func TestPolicyChangeApplies(t *testing.T) {
	p := policies{"alice": policy("alice", quotas.Limit{Window: "1m", Limit: 1})}
	l, c := newLimiter(p, &usage{}, enforce.DefaultConfig())
	if got := admitted(l, "alice", "GET /x", 3); got != 1 {
		t.Fatalf("admitted %d, want 1", got)
	}
	p["alice"] = &quotas.Policy{Client: "alice", Limits: []quotas.Limit{{Window: "1m", Limit: 0}}, Updated: time.Unix(2, 0)}
	c.add(time.Second)
	if d := l.Decide("alice", "", "GET /x", true); d.Allowed || d.Limits[0].Limit.Limit != 0 {
		t.Errorf("after the change: %+v, want refused by a limit of 0", d)
	}
	delete(p, "alice")
	c.add(time.Second)
	if d := l.Decide("alice", "", "GET /x", true); !d.Allowed || len(d.Limits) != 0 {
		t.Errorf("after the delete: %+v, want allowed without limits", d)
	}
}

// The table is read once per Refresh per client, not per call.
func TestReadsOncePerRefresh(t *testing.T) {
	u := &usage{}
	l, c := newLimiter(policies{"alice": policy("alice", quotas.Limit{Window: "1m", Limit: 1000}, quotas.Limit{Window: "1m", Limit: 10, Endpoint: "GET /x"})}, u, enforce.DefaultConfig())
	admitted(l, "alice", "GET /y", 50)
	c.add(150 * time.Millisecond)
	admitted(l, "alice", "GET /y", 50)
	if u.reads != 2 {
		t.Errorf("%d reads for 100 calls over two refreshes (one step), want 2", u.reads)
	}
}

func TestGateAnswers429WithHeaders(t *testing.T) {
	p := policies{quotas.Default: policy(quotas.Default, quotas.Limit{Window: "1m", Limit: 2}, quotas.Limit{Window: "1h", Limit: 100})}
	cfg := enforce.DefaultConfig()
	cfg.Exempt = []string{"/healthz"}
	l, _ := newLimiter(p, &usage{}, cfg)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	gate := l.Gate
	clientOf := func(r *http.Request) string { return r.Header.Get("X-Client") }
	h := gate(httpx.Route{Method: http.MethodGet, Path: "/users/{id}"}, clientOf, ok)
	call := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/users/1", nil)
		r.Header.Set("X-Client", "alice")
		h.ServeHTTP(rec, r)
		return rec
	}
	first := call()
	if first.Code != http.StatusNoContent {
		t.Fatalf("first call = %d", first.Code)
	}
	if got, want := first.Header().Get("RateLimit-Policy"), `"1m";q=2;w=60, "1h";q=100;w=3600`; got != want {
		t.Errorf("RateLimit-Policy = %q, want %q", got, want)
	}
	if got, want := first.Header().Get("RateLimit"), `"1m";r=1;t=50, "1h";r=99;t=3590`; got != want {
		t.Errorf("RateLimit = %q, want %q", got, want)
	}
	call()
	refused := call()
	if refused.Code != http.StatusTooManyRequests || refused.Header().Get("Retry-After") != "50" {
		t.Fatalf("third call = %d, Retry-After %q; want 429 after 50", refused.Code, refused.Header().Get("Retry-After"))
	}
	if got, want := refused.Header().Get("RateLimit"), `"1m";r=0;t=50, "1h";r=98;t=3590`; got != want {
		t.Errorf("429 RateLimit = %q, want %q", got, want)
	}
	if ct := refused.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("429 Content-Type = %q", ct)
	}
	health := httptest.NewRecorder()
	gate(httpx.Route{Method: http.MethodGet, Path: "/healthz"}, clientOf, ok).ServeHTTP(health, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if health.Code != http.StatusNoContent || health.Header().Get("RateLimit") != "" {
		t.Errorf("exempt route: %d %v, want it passed through untouched", health.Code, health.Header())
	}
}

func TestCheckWithoutReserveOnlyLooks(t *testing.T) {
	l, _ := newLimiter(policies{"alice": policy("alice", quotas.Limit{Window: "1m", Limit: 1})}, &usage{}, enforce.DefaultConfig())
	for range 3 {
		if d := l.Decide("alice", "", "", false); !d.Allowed || d.Limits[0].Remaining != 1 {
			t.Fatalf("look = %+v, want allowed with the 1 call left", d)
		}
	}
	if got := admitted(l, "alice", "", 3); got != 1 {
		t.Errorf("admitted %d after looking, want 1", got)
	}
}

// Calls to exempt routes are in the table's total but count against no limit.
func TestExemptCallsCountAgainstNoLimit(t *testing.T) {
	u := &usage{}
	u.set("alice", "", 12)
	u.set("alice", "GET /healthz", 8)
	u.set("alice", "HEAD /healthz", 2)
	u.set("alice", "GET /x", 2)
	cfg := enforce.DefaultConfig()
	cfg.Exempt = []string{"/healthz"}
	l, _ := newLimiter(policies{"alice": policy("alice", quotas.Limit{Window: "1m", Limit: 5})}, u, cfg)
	if got := admitted(l, "alice", "GET /x", 5); got != 3 {
		t.Errorf("admitted %d with 2 of 5 counted (10 calls exempt), want 3", got)
	}
}

// A limit of a service counts that service's calls only; the API's own
// calls are the default service's, so only limits of it (or of every
// service) refuse them.
func TestServiceLimitsCountTheirServiceOnly(t *testing.T) {
	u := &usage{}
	u.set("alice", "", 9)
	u.set("alice", "shop: GET /x", 6)
	u.set("alice", "GET /x", 3)
	p := policies{"alice": policy("alice", quotas.Limit{Window: "1m", Limit: 5, Service: "shop"})}
	l, _ := newLimiter(p, u, enforce.DefaultConfig())
	if got := admitted(l, "alice", "GET /x", 3); got != 3 {
		t.Errorf("shop's limit (6 of 5 used) refused the API's own calls: admitted %d of 3", got)
	}
	p["alice"] = policy("alice", quotas.Limit{Window: "1m", Limit: 5, Service: "default"})
	l, _ = newLimiter(p, u, enforce.DefaultConfig())
	if got := admitted(l, "alice", "GET /x", 5); got != 2 {
		t.Errorf("the default service's limit (3 of 5 used, shop's 6 not counted) admitted %d of 5, want 2", got)
	}
	p["alice"] = policy("alice", quotas.Limit{Window: "1m", Limit: 5, Service: "shop", Endpoint: "GET /x"})
	l, _ = newLimiter(p, u, enforce.DefaultConfig())
	if got := admitted(l, "alice", "GET /x", 2); got != 2 {
		t.Errorf("shop's GET /x limit refused the API's GET /x: admitted %d of 2", got)
	}
}

// A call of a service is decided by the limits of every call, of its
// service and of its endpoint in that service; not by another service's,
// nor by the default service's endpoint limits.
func TestServiceCallsAreDecidedByTheirServiceLimits(t *testing.T) {
	u := &usage{}
	u.set("alice", "", 10)
	u.set("alice", "shop: GET /orders/{id}", 4)
	p := policies{"alice": policy("alice",
		quotas.Limit{Window: "1h", Limit: 100},                                              // every call: 10 used
		quotas.Limit{Window: "1m", Limit: 6, Service: "shop"},                               // shop's: 4 used
		quotas.Limit{Window: "1m", Limit: 5, Service: "shop", Endpoint: "GET /orders/{id}"}, // 4 used
		quotas.Limit{Window: "1m", Limit: 0, Service: "billing"},
		quotas.Limit{Window: "1m", Limit: 0, Endpoint: "GET /orders/{id}"})} // the API's own route
	l, _ := newLimiter(p, u, enforce.DefaultConfig())
	d := l.Decide("alice", "shop", "GET /orders/{id}", true)
	if !d.Allowed || len(d.Limits) != 3 || d.Limits[0].Remaining != 89 || d.Limits[1].Remaining != 1 || d.Limits[2].Remaining != 0 {
		t.Fatalf("shop's order: %+v, want allowed under 3 limits, 89, 1 and 0 left", d)
	}
	if d := l.Decide("alice", "shop", "GET /orders/{id}", true); d.Allowed {
		t.Errorf("shop's second order: %+v, want refused by its endpoint limit", d)
	}
	if d := l.Decide("alice", "shop", "GET /carts", true); !d.Allowed || d.Limits[1].Remaining != 0 {
		t.Errorf("shop's cart: %+v, want the last of shop's 6", d)
	}
	if d := l.Decide("alice", "shop", "GET /carts", true); d.Allowed {
		t.Errorf("shop past 6: %+v, want refused", d)
	}
	if d := l.Decide("alice", "billing", "GET /x", true); d.Allowed {
		t.Errorf("billing: %+v, want refused by its limit of 0", d)
	}
	if d := l.Decide("alice", "default", "GET /orders/{id}", true); d.Allowed || len(d.Limits) != 2 {
		t.Errorf("the API's own GET /orders/{id}: %+v, want refused by its limit of 0 (and counted under every call's)", d)
	}
	look := l.Look("alice", "shop")
	if look.Policy != "alice" || len(look.Limits) != 3 || look.Limits[2].Endpoint != "GET /orders/{id}" || look.Limits[1].Remaining != 0 {
		t.Errorf("look at shop: %+v, want every call's, shop's and shop's endpoint limit", look)
	}
}

// source fails while down is set.
type source struct {
	mu    sync.Mutex
	down  bool
	reads int
	inner enforce.Source
}

func (s *source) Read(client string, now time.Time) (*quotas.Policy, []uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if s.down {
		return nil, nil, errors.New("connection refused")
	}
	return s.inner.Read(client, now)
}

func (s *source) setDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

type tableSource struct {
	p policies
	u *usage
}

func (t tableSource) Read(client string, now time.Time) (*quotas.Policy, []uint64, error) {
	p := t.p[client]
	if p == nil {
		return nil, nil, nil
	}
	counts := make([]uint64, len(p.Limits))
	for i := range counts {
		counts[i] = t.u.counts[client][""]
	}
	return p, counts, nil
}

func TestReadFailuresFailOpenOrClosedAndLogOncePerOutage(t *testing.T) {
	for _, closed := range []bool{false, true} {
		var logs bytes.Buffer
		src := &source{inner: tableSource{p: policies{"alice": policy("alice", quotas.Limit{Window: "1m", Limit: 3})}, u: &usage{}}}
		cfg := enforce.DefaultConfig()
		cfg.FailClosed = closed
		c := &clock{t: t0}
		l := enforce.NewWithSource(src, cfg, enforce.WithNow(c.now), enforce.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		if got := admitted(l, "alice", "GET /x", 2); got != 2 {
			t.Fatalf("closed=%v: admitted %d before the outage, want 2", closed, got)
		}
		src.setDown(true)
		var allowed, unavailable int
		for range 10 {
			c.add(time.Second) // a read per call, each failing
			d := l.Decide("alice", "", "GET /x", true)
			if d.Allowed {
				allowed++
			}
			if d.Unavailable {
				unavailable++
			}
			if got := l.Decide("bob", "", "GET /x", true); got.Allowed == closed || got.Unavailable != closed {
				t.Errorf("closed=%v: bob, never read: %+v", closed, got)
			}
		}
		if closed && (allowed != 0 || unavailable != 10) {
			t.Errorf("fail closed: %d allowed, %d unavailable of 10, want 0 and 10", allowed, unavailable)
		}
		if !closed && (allowed != 1 || unavailable != 0) {
			t.Errorf("fail open: %d allowed, want 1 (the last read's count, 2 of 3, and the calls admitted since)", allowed)
		}
		src.setDown(false)
		c.add(time.Second)
		if d := l.Decide("alice", "", "GET /x", false); d.Unavailable || d.Policy != "alice" {
			t.Errorf("closed=%v: after the outage: %+v", closed, d)
		}
		if n := strings.Count(logs.String(), "reads fail"); n != 1 {
			t.Errorf("closed=%v: the outage logged %d times, want once:\n%s", closed, n, logs.String())
		}
		if !strings.Contains(logs.String(), "reads succeed again") || !strings.Contains(logs.String(), "failed_reads=20") {
			t.Errorf("closed=%v: the outage's end not logged with its 20 failed reads:\n%s", closed, logs.String())
		}
		src.setDown(true)
		c.add(time.Second)
		if d := l.Decide("alice", "", "GET /x", true); closed {
			rec := httptest.NewRecorder()
			enforce.Refuse(rec, httptest.NewRequest(http.MethodGet, "/x", nil), d)
			if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" {
				t.Errorf("fail closed answers %d, Retry-After %q; want 503 after 1 s", rec.Code, rec.Header().Get("Retry-After"))
			}
		}
	}
}

// The states kept are bounded: past MaxClients, idle clients go first.
func TestClientStatesAreBounded(t *testing.T) {
	cfg := enforce.DefaultConfig()
	cfg.MaxClients = 3
	p := policies{quotas.Default: policy(quotas.Default, quotas.Limit{Window: "1m", Limit: 2})}
	l, c := newLimiter(p, &usage{}, cfg)
	admitted(l, "a", "GET /x", 2)
	c.add(time.Second) // a is idle for longer than its calls count
	for _, client := range []string{"b", "c", "d"} {
		admitted(l, client, "GET /x", 1)
	}
	if l.Clients() != 3 {
		t.Errorf("%d states kept, want 3", l.Clients())
	}
	if got := admitted(l, "b", "GET /x", 2); got != 1 {
		t.Errorf("b, kept: admitted %d more, want 1 (its first call still counted)", got)
	}
	for i := range 20 {
		admitted(l, fmt.Sprint("e", i), "GET /x", 1)
	}
	if l.Clients() > 3 {
		t.Errorf("%d states kept after 20 new clients, want at most 3", l.Clients())
	}
}

package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/app"
	"github.com/inarious/inarious/internal/app/apptest"
	"github.com/inarious/inarious/internal/kafka/kafkatest"
	"github.com/inarious/inarious/internal/quotas/quotahttp"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/middleware"
)

// quotaCall is one call's answer: status, body and header.
type quotaCall struct {
	status int
	body   string
	header http.Header
}

// callAs sends a call to url as client (X-Forwarded-For, 127.0.0.1 being a
// trusted proxy in tests) with a JSON body, if any.
func callAs(t *testing.T, method, url, client, body string) quotaCall {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if client != "" {
		req.Header.Set("X-Forwarded-For", client)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return quotaCall{resp.StatusCode, string(b), resp.Header}
}

// checkOf is GET /quotas/{client}/check?reserve=false on base, with the
// query parameters of more ("service=shop").
func checkOf(t *testing.T, base, client string, more ...string) quotahttp.Check {
	t.Helper()
	c := callAs(t, "GET", base+"/quotas/"+client+"/check?"+strings.Join(append([]string{"reserve=false"}, more...), "&"), "", "")
	var out quotahttp.Check
	if err := json.Unmarshal([]byte(c.body), &out); err != nil || c.status != http.StatusOK {
		t.Fatalf("check %s = %d %s (%v)", client, c.status, c.body, err)
	}
	return out
}

// Two API replicas on one broker: a policy written through either is
// enforced by both without a restart, and a client's calls through one
// count against its quota on the other (the usage table is shared).
func TestQuotasTwoReplicasAgree(t *testing.T) {
	kc := kafkatest.Config(t, 4)
	opts := func(c *app.Config) {
		c.Brokers, c.Kafka.Brokers = strings.Join(kc.Brokers, ","), kc.Brokers
		c.Quotas, c.QuotaRefresh = true, 20*time.Millisecond
	}
	a := apptest.Start(t, nil, opts)
	cfgB := a.Config
	b := startAPI(t, cfgB, "replica B")
	const client = "198.51.100.26"

	// A policy written through A: B enforces it.
	if c := callAs(t, "PUT", a.Base+"/quotas/"+client, "", `{"limits":[{"window":"1d","limit":3}]}`); c.status != http.StatusCreated {
		t.Fatalf("PUT on A = %d %s", c.status, c.body)
	}
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		c := checkOf(t, b, client)
		return c.Policy == client && len(c.Limits) == 1 && c.Limits[0].Limit.Limit == 3, fmt.Sprintf("B's check: %+v", c)
	})

	// Calls through A: allowed ones carry what remains, the fourth is refused.
	for i, want := range []string{`"1d";r=2;t=`, `"1d";r=1;t=`, `"1d";r=0;t=`} {
		c := callAs(t, "GET", a.Base+"/", client, "")
		if c.status != http.StatusOK || !strings.HasPrefix(c.header.Get("RateLimit"), want) || c.header.Get("RateLimit-Policy") != `"1d";q=3;w=86400` {
			t.Fatalf("call %d on A = %d, RateLimit %q, RateLimit-Policy %q; want 200, %s…", i+1, c.status, c.header.Get("RateLimit"), c.header.Get("RateLimit-Policy"), want)
		}
	}
	over := callAs(t, "GET", a.Base+"/", client, "")
	if over.status != http.StatusTooManyRequests || over.header.Get("Retry-After") == "" || !strings.HasPrefix(over.header.Get("RateLimit"), `"1d";r=0;t=`) ||
		!strings.Contains(over.body, "over the quota of 3 calls per 1d") {
		t.Fatalf("fourth call on A = %d %v %s; want 429 with Retry-After and r=0", over.status, over.header, over.body)
	}
	// B knows of A's calls only through the usage table.
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		c := callAs(t, "GET", b+"/", client, "")
		return c.status == http.StatusTooManyRequests, fmt.Sprintf("B answers %d to the client over its quota", c.status)
	})
	// Probes are exempt by default.
	if c := callAs(t, "GET", a.Base+"/healthz", client, ""); c.status != http.StatusOK || c.header.Get("RateLimit") != "" {
		t.Errorf("/healthz of a client over its quota = %d %v", c.status, c.header)
	}

	// A change through B raises the limit on A; a delete through A lifts it on B.
	if c := callAs(t, "PUT", b+"/quotas/"+client, "", `{"limits":[{"window":"1d","limit":1000}]}`); c.status != http.StatusOK {
		t.Fatalf("PUT on B = %d %s", c.status, c.body)
	}
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		c := callAs(t, "GET", a.Base+"/", client, "")
		return c.status == http.StatusOK, fmt.Sprintf("A answers %d after the limit was raised on B", c.status)
	})
	if c := callAs(t, "DELETE", a.Base+"/quotas/"+client, "", ""); c.status != http.StatusNoContent {
		t.Fatalf("DELETE on A = %d %s", c.status, c.body)
	}
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		c := checkOf(t, b, client)
		return c.Policy == "" && len(c.Limits) == 0, fmt.Sprintf("B's check after the delete: %+v", c)
	})
	if c := callAs(t, "GET", b+"/", client, ""); c.status != http.StatusOK || c.header.Get("RateLimit") != "" {
		t.Errorf("B after the delete = %d, RateLimit %q; want 200 without", c.status, c.header.Get("RateLimit"))
	}
	// Every replica lists the same policies.
	if ca, cb := callAs(t, "GET", a.Base+"/quotas", "", ""), callAs(t, "GET", b+"/quotas", "", ""); ca.body != `{"quotas":[]}`+"\n" || cb.body != ca.body {
		t.Errorf("lists: A %s, B %s; want both empty", ca.body, cb.body)
	}
}

// A Go service with the middleware enforces Inarious' quotas: a limit of
// its service (and one of another service, which it ignores) through
// GET /quotas/{client}/check, its calls counted as its events reach the
// usage table; a second replica of the service, which admitted none of
// them, refuses the client once the table shows them.
func TestQuotasThroughTheMiddleware(t *testing.T) {
	a := apptest.Start(t, nil, func(c *app.Config) { c.Quotas, c.QuotaRefresh = true, 20*time.Millisecond })
	const client = "acme"
	if c := callAs(t, "PUT", a.Base+"/quotas/"+client, "",
		`{"limits":[{"window":"1d","limit":5,"service":"shop"},{"window":"1d","limit":0,"service":"billing"}]}`); c.status != http.StatusCreated {
		t.Fatalf("PUT = %d %s", c.status, c.body)
	}
	replica := func() (*middleware.Middleware, http.Handler) {
		m := middleware.New(middleware.NewHTTPTransport(a.Base+"/events", middleware.HTTPLinger(time.Millisecond)),
			middleware.WithService("shop"), middleware.WithClient(func(r *http.Request) string { return r.Header.Get("X-Tenant") }),
			middleware.WithQuotas(a.Base, middleware.QuotaTimeout(5*time.Second)))
		t.Cleanup(func() { _ = m.Close(context.Background()) })
		routes := http.NewServeMux()
		routes.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {})
		return m, m.Wrap(routes)
	}
	order := func(h http.Handler) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/orders/7", nil)
		req.Header.Set("X-Tenant", client)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	_, one := replica()
	for i := range 5 {
		if rec := order(one); rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("RateLimit"), fmt.Sprintf(`"1d shop";r=%d;t=`, 4-i)) {
			t.Fatalf("call %d = %d %v, want 200 with %d left", i+1, rec.Code, rec.Header(), 4-i)
		}
	}
	if rec := order(one); rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("sixth call = %d %v, want 429", rec.Code, rec.Header())
	}
	// Inarious counts them as their events reach the usage table.
	testutil.Eventually(t, 20*time.Second, func() (bool, string) {
		c := checkOf(t, a.Base, client, "service=shop")
		u := callAs(t, "GET", a.Base+"/usage/"+client+"/series?step=1d", "", "")
		return !c.Allowed, fmt.Sprintf("Inarious' check for shop: %+v; usage %s", c, u.body)
	})
	// A second replica, which admitted none of them, knows of them only
	// through Inarious: it refuses the client's first call.
	_, two := replica()
	if rec := order(two); rec.Code != http.StatusTooManyRequests {
		t.Errorf("the second replica answers %d %v, want 429", rec.Code, rec.Header())
	}
}

package quotahttp_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/problem"
	"github.com/inarious/inarious/internal/quotas"
	"github.com/inarious/inarious/internal/quotas/enforce"
	"github.com/inarious/inarious/internal/quotas/quotahttp"
	"github.com/inarious/inarious/internal/quotas/quotastest"
	"github.com/inarious/inarious/internal/windows"
)

type noUsage struct{}

func (noUsage) Series(string, time.Duration, time.Time, time.Time) ([]windows.Bucket, error) {
	return nil, nil
}

func newServer(t *testing.T) http.Handler {
	t.Helper()
	st := quotastest.NewStore()
	lim := enforce.New(st, noUsage{}, enforce.Config{Refresh: time.Nanosecond, Lag: time.Second, Replicas: 1})
	r := mux.NewRouter()
	httpx.Mount(r, quotahttp.Routes(st, lim, windows.Default()))
	return r
}

func do(t *testing.T, h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	var r *http.Request
	if body != "" {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	} else {
		r = httptest.NewRequest(method, path, nil)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func TestPolicyCRUD(t *testing.T) {
	h := newServer(t)
	body := `{"limits":[{"window":"1m","limit":1000},{"window":"1d","limit":5,"endpoint":"POST /users"}]}`
	if rec := do(t, h, "PUT", "/quotas/alice", body); rec.Code != http.StatusCreated {
		t.Fatalf("PUT new = %d: %s", rec.Code, rec.Body)
	}
	rec := do(t, h, "PUT", "/quotas/alice", `{"limits":[{"window":"1h","limit":10}]}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("PUT again = %d: %s", rec.Code, rec.Body)
	}
	var p quotas.Policy
	if err := json.Unmarshal(do(t, h, "GET", "/quotas/alice", "").Body.Bytes(), &p); err != nil || p.Client != "alice" || len(p.Limits) != 1 || p.Limits[0] != (quotas.Limit{Window: "1h", Limit: 10}) {
		t.Errorf("GET = %+v (%v), want the replaced policy", p, err)
	}
	do(t, h, "PUT", "/quotas/*", `{"limits":[{"window":"1m","limit":60}]}`)
	var list quotahttp.PolicyList
	if err := json.Unmarshal(do(t, h, "GET", "/quotas", "").Body.Bytes(), &list); err != nil || len(list.Quotas) != 2 || list.Quotas[0].Client != "*" {
		t.Errorf("list = %+v (%v)", list, err)
	}
	if rec := do(t, h, "DELETE", "/quotas/alice", ""); rec.Code != http.StatusNoContent {
		t.Errorf("DELETE = %d", rec.Code)
	}
	for _, m := range []string{"GET", "DELETE"} {
		if rec := do(t, h, m, "/quotas/alice", ""); rec.Code != http.StatusNotFound || rec.Header().Get("Content-Type") != problem.ContentType {
			t.Errorf("%s after delete = %d %s", m, rec.Code, rec.Header().Get("Content-Type"))
		}
	}
	if rec := do(t, h, "GET", "/quotas", ""); !strings.Contains(rec.Body.String(), `"client":"*"`) || strings.Contains(rec.Body.String(), "alice") {
		t.Errorf("list after delete: %s", rec.Body)
	}
}

func TestPutValidation(t *testing.T) {
	h := newServer(t)
	for _, tc := range []struct{ body, field, says string }{
		{`{"limits":[{"window":"5m","limit":1}]}`, "limits[0].window", `window "5m" is not a usage window; the windows kept are 1m, 1h, 1d`},
		{`{"limits":[{"window":"1m","limit":-1}]}`, "limits[0].limit", "limit must not be negative"},
		{`{"limits":[{"window":"1m","limit":1.5}]}`, "limits[0].limit", "whole number"},
		{`{"limits":[{"window":"1m","limit":"10"}]}`, "limits[0].limit", "whole number"},
		{`{"limits":[{"window":"1m"}]}`, "limits[0].limit", "limit is required"},
		{`{"limits":[{"window":"1m","limit":99999999999999999999}]}`, "limits[0].limit", "at most"},
		{`{"limits":[]}`, "limits", "1 to 32"},
		{`{"limits":[{"window":"1m","limit":1,"endpoint":"users"}]}`, "limits[0].endpoint", "a method, a space and a route"},
		{`{"limits":[{"window":"1m","limit":1},{"window":"1m","limit":2}]}`, "limits[1].window", "same window"},
	} {
		rec := do(t, h, "PUT", "/quotas/alice", tc.body)
		var d problem.Details
		_ = json.Unmarshal(rec.Body.Bytes(), &d)
		if rec.Code != http.StatusBadRequest || !strings.Contains(d.Errors[tc.field], tc.says) || !strings.Contains(d.Detail, tc.field+": ") {
			t.Errorf("%s: %d %s, want 400 with %s: %q", tc.body, rec.Code, rec.Body, tc.field, tc.says)
		}
	}
	for body, says := range map[string]string{
		`{"limits":[{"window":"1m","limit":1}],"burst":5}`:  "burst",
		`{"limits":[{"window":"1m","limit":1,"per":"ip"}]}`: "per",
		`{"limits":[{"window":"\ud800","limit":1}]}`:        "surrogate",
		`[]`:        "JSON object",
		`{"limits"`: "not valid JSON",
	} {
		if rec := do(t, h, "PUT", "/quotas/alice", body); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), says) {
			t.Errorf("%s: %d %s, want 400 saying %s", body, rec.Code, rec.Body, says)
		}
	}
	r := httptest.NewRequest("PUT", "/quotas/alice", strings.NewReader(`{"limits":[{"window":"1m","limit":1}]}`))
	r.Header.Set("Content-Type", "text/plain")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain = %d, want 415", rec.Code)
	}
	if rec := do(t, h, "GET", "/quotas/alice", ""); rec.Code != http.StatusNotFound {
		t.Errorf("a refused PUT stored something: %d %s", rec.Code, rec.Body)
	}
}

// checkAlice asks GET /quotas/alice/check with query, which must answer 200.
func checkAlice(t *testing.T, h http.Handler, query string) (quotahttp.Check, *httptest.ResponseRecorder) {
	t.Helper()
	rec := do(t, h, "GET", "/quotas/alice/check"+query, "")
	var c quotahttp.Check
	if err := json.Unmarshal(rec.Body.Bytes(), &c); err != nil || rec.Code != 200 {
		t.Fatalf("check%s = %d %s", query, rec.Code, rec.Body)
	}
	return c, rec
}

func TestCheck(t *testing.T) {
	h := newServer(t)
	do(t, h, "PUT", "/quotas/alice", `{"limits":[{"window":"1m","limit":2},{"window":"1m","limit":1,"endpoint":"POST /orders"}]}`)
	check := func(query string) (quotahttp.Check, *httptest.ResponseRecorder) { return checkAlice(t, h, query) }
	if c, _ := check("?reserve=false"); !c.Allowed || c.Policy != "alice" || len(c.Limits) != 1 || c.Limits[0].Remaining != 2 {
		t.Errorf("look: %+v", c)
	}
	c, rec := check("?endpoint=POST%20/orders")
	if !c.Allowed || len(c.Limits) != 2 || c.Limits[0].Remaining != 1 || c.Limits[1].Remaining != 0 || c.Limits[0].ResetSeconds < 1 || c.Limits[0].ResetSeconds > 60 {
		t.Errorf("first order: %+v", c)
	}
	if got := rec.Header().Get("RateLimit-Policy"); got != `"1m";q=2;w=60, "1m POST /orders";q=1;w=60` {
		t.Errorf("RateLimit-Policy = %q", got)
	}
	if c, _ := check("?endpoint=POST%20/orders"); c.Allowed {
		t.Errorf("second order: %+v, want refused", c)
	}
	if c, _ := check(""); !c.Allowed || c.Limits[0].Remaining != 0 {
		t.Errorf("another call: %+v, want allowed, the last of 2", c)
	}
	if c, _ := check(""); c.Allowed {
		t.Errorf("third call: %+v, want refused", c)
	}
	var bob quotahttp.Check
	if err := json.Unmarshal(do(t, h, "GET", "/quotas/bob/check", "").Body.Bytes(), &bob); err != nil || !bob.Allowed || bob.Policy != "" || len(bob.Limits) != 0 {
		t.Errorf("bob, without a policy: %+v (%v), want allowed without limits", bob, err)
	}
	for _, q := range []string{"?endpoint=orders", "?reserve=maybe"} {
		if rec := do(t, h, "GET", "/quotas/alice/check"+q, ""); rec.Code != http.StatusBadRequest {
			t.Errorf("%s = %d, want 400", q, rec.Code)
		}
	}
}

// A check names the service asking, so the limits of that service (and of
// its endpoints) refuse its calls; all=true lists every limit of the
// service, for a caller that decides its calls itself.
func TestCheckOfAService(t *testing.T) {
	h := newServer(t)
	do(t, h, "PUT", "/quotas/alice", `{"limits":[{"window":"1h","limit":100},{"window":"1m","limit":2,"service":"shop"},`+
		`{"window":"1m","limit":1,"service":"shop","endpoint":"POST /orders"},{"window":"1m","limit":0,"service":"billing"}]}`)
	check := func(query string) (quotahttp.Check, *httptest.ResponseRecorder) { return checkAlice(t, h, query) }
	c, rec := check("?service=shop&endpoint=POST%20/orders")
	if !c.Allowed || c.Service != "shop" || len(c.Limits) != 3 || c.Limits[2].Remaining != 0 {
		t.Errorf("shop's first order: %+v", c)
	}
	if got := rec.Header().Get("RateLimit-Policy"); got != `"1h";q=100;w=3600, "1m shop";q=2;w=60, "1m shop POST /orders";q=1;w=60` {
		t.Errorf("RateLimit-Policy = %q", got)
	}
	if c, _ := check("?service=shop&endpoint=POST%20/orders"); c.Allowed {
		t.Errorf("shop's second order: %+v, want refused by the endpoint limit", c)
	}
	if c, _ := check("?service=shop&endpoint=GET%20/carts"); !c.Allowed || c.Limits[1].Remaining != 0 {
		t.Errorf("shop's cart: %+v, want the last of shop's 2", c)
	}
	if c, _ := check("?service=billing"); c.Allowed {
		t.Errorf("billing: %+v, want refused by its limit of 0", c)
	}
	if c, _ := check(""); !c.Allowed || len(c.Limits) != 1 {
		t.Errorf("no service (the API's own): %+v, want allowed under the every-call limit only", c)
	}
	c, _ = check("?service=shop&all=true&reserve=false")
	if c.Policy != "alice" || len(c.Limits) != 3 || c.Limits[2].Endpoint != "POST /orders" || c.Limits[0].Remaining != 97 { // 3 of the calls above were allowed
		t.Errorf("all of shop's limits: %+v", c)
	}
	for _, q := range []string{"?service=", "?service=sh%20op", "?all=maybe"} {
		if rec := do(t, h, "GET", "/quotas/alice/check"+q, ""); rec.Code != http.StatusBadRequest {
			t.Errorf("%s = %d, want 400", q, rec.Code)
		}
	}
}

package alertshttp_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"github.com/inarious/inarious/internal/alerts"
	"github.com/inarious/inarious/internal/alertshttp"
	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/problem"
	"github.com/inarious/inarious/internal/windows"
)

// store writes into the rules read, or fails.
type store struct {
	rules *alerts.Rules
	fail  error
}

func (s store) Put(r alerts.Rule) error {
	if s.fail == nil {
		s.rules.Set(r)
	}
	return s.fail
}

func (s store) Delete(name string) error {
	if s.fail == nil {
		s.rules.Delete(name)
	}
	return s.fail
}

type none struct{}

func (none) List() []*alerts.Alert { return nil }

func router(fail error) (*mux.Router, *alerts.Rules) {
	rules := alerts.NewRules()
	r := mux.NewRouter()
	httpx.Mount(r, alertshttp.Routes(alertshttp.Deps{Rules: rules, Writer: store{rules, fail}, Active: none{},
		Windows: windows.Default(), Log: slog.New(slog.DiscardHandler)}))
	return r, rules
}

func do(h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

const usageRule = `{"kind":"client_usage","client":"alice","window":"1m","limit":100,"thresholds":[80,100],
	"webhook":{"url":"https://h.example/x","secret":"hidden-secret"}}`

func TestRuleCRUD(t *testing.T) {
	h, rules := router(nil)
	if rec := do(h, "PUT", "/alerts/rules/alice", usageRule); rec.Code != http.StatusCreated || strings.Contains(rec.Body.String(), "hidden-secret") ||
		!strings.Contains(rec.Body.String(), `"secret_set":true`) {
		t.Fatalf("create = %d %s", rec.Code, rec.Body)
	}
	c, ok := rules.Current().Rule("alice")
	if !ok || c.Webhook.Secret != "hidden-secret" || c.UpdatedAt.IsZero() {
		t.Fatalf("stored %+v", c)
	}
	if rec := do(h, "PUT", "/alerts/rules/alice", usageRule); rec.Code != http.StatusOK {
		t.Errorf("replace = %d", rec.Code)
	}
	var list struct {
		Rules []alerts.PublicRule
		Count int
	}
	rec := do(h, "GET", "/alerts/rules", "")
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || list.Count != 1 || list.Rules[0].Name != "alice" {
		t.Errorf("list %s (%v)", rec.Body, err)
	}
	if rec := do(h, "DELETE", "/alerts/rules/alice", ""); rec.Code != http.StatusNoContent {
		t.Errorf("delete = %d", rec.Code)
	}
	for _, m := range []string{"GET", "DELETE"} {
		if rec := do(h, m, "/alerts/rules/alice", ""); rec.Code != http.StatusNotFound || rec.Header().Get("Content-Type") != problem.ContentType {
			t.Errorf("%s after delete = %d %s", m, rec.Code, rec.Header())
		}
	}
}

func TestRuleRejections(t *testing.T) {
	h, rules := router(nil)
	var p problem.Details
	rec := do(h, "PUT", "/alerts/rules/x", `{"kind":"client_usage","client":"a","window":"5m","limit":0,"thresholds":[100,80]}`)
	if err := json.Unmarshal(rec.Body.Bytes(), &p); rec.Code != http.StatusBadRequest || err != nil ||
		p.Errors["window"] == "" || p.Errors["limit"] == "" || p.Errors["thresholds"] == "" {
		t.Errorf("invalid rule = %d %s", rec.Code, rec.Body)
	}
	// A rule on a quota: a window not kept, thresholds out of order or past
	// 100 times the limit, each named in the problem.
	for body, field := range map[string]string{
		`{"kind":"client_usage","client":"*","quota":"5m","thresholds":[80]}`:               "quota",
		`{"kind":"client_usage","client":"*","quota":"1m","thresholds":[100,80]}`:           "thresholds",
		`{"kind":"client_usage","client":"*","quota":"1m","thresholds":[80,10001]}`:         "thresholds",
		`{"kind":"client_usage","client":"*","quota":"1m","limit":5,"thresholds":[80]}`:     "limit",
		`{"kind":"client_usage","client":"*","quota":"1d GET users","thresholds":[80]}`:     "quota",
		`{"kind":"client_usage","client":"*","window":"1h","quota":"1m","thresholds":[80]}`: "window",
	} {
		rec := do(h, "PUT", "/alerts/rules/x", body)
		var p problem.Details
		if err := json.Unmarshal(rec.Body.Bytes(), &p); rec.Code != http.StatusBadRequest || err != nil ||
			rec.Header().Get("Content-Type") != problem.ContentType || p.Errors[field] == "" || len(p.Errors) != 1 {
			t.Errorf("%s = %d %s, want 400 naming %s only", body, rec.Code, rec.Body, field)
		}
	}
	// A good one takes the quota's window.
	if rec := do(h, "PUT", "/alerts/rules/share", `{"kind":"client_usage","client":"*","quota":"1d POST /users","thresholds":[80,100,200]}`); rec.Code != http.StatusCreated ||
		!strings.Contains(rec.Body.String(), `"window":"1d"`) {
		t.Errorf("a rule on a quota = %d %s", rec.Code, rec.Body)
	}
	rules.Delete("share")
	req := httptest.NewRequest("PUT", "/alerts/rules/x", strings.NewReader(usageRule))
	req.Header.Set("Content-Type", "text/plain")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain = %d", rec.Code)
	}
	if rec := do(h, "PUT", "/alerts/rules/x", `{"client":"`+strings.Repeat("c", 70<<10)+`"}`); rec.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("70 KiB = %d", rec.Code)
	}
	if len(rules.Current().List()) != 0 {
		t.Errorf("a rejected rule was stored: %+v", rules.Current().List())
	}
	down, _ := router(errors.New("kafka away"))
	if rec := do(down, "PUT", "/alerts/rules/x", usageRule); rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Content-Type") != problem.ContentType {
		t.Errorf("writer failing = %d %s", rec.Code, rec.Body)
	}
}

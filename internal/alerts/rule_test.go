package alerts_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/alerts"
	"github.com/inarious/inarious/internal/quotas"
	"github.com/inarious/inarious/internal/windows"
)

func TestRuleValidation(t *testing.T) {
	valid := map[string]string{
		"usage":           `{"kind":"client_usage","client":"alice","window":"1m","limit":1000,"thresholds":[80,100,200]}`,
		"every client":    `{"kind":"client_usage","client":"*","window":"1d","limit":5,"thresholds":[100],"webhook":{"url":"https://h.example/x","secret":"s"}}`,
		"client errors":   `{"kind":"client_error_rate","client":"bob","window":"1h","thresholds":[5,20],"min_calls":50}`,
		"endpoint p99":    `{"kind":"endpoint_p99","endpoint":"GET /users/{id}","window":"1m","thresholds":[250]}`,
		"endpoint errors": `{"kind":"endpoint_error_rate","endpoint":"*","window":"1m","thresholds":[100]}`,
		"quota":           `{"kind":"client_usage","client":"*","quota":"1m","thresholds":[80,100,200]}`,
		"quota, window":   `{"kind":"client_usage","client":"alice","window":"60s","quota":"1m","thresholds":[80,100,200]}`,
		"quota, scoped":   `{"kind":"client_usage","client":"alice","quota":"1d shop POST /orders","thresholds":[10000]}`,
	}
	for name, body := range valid {
		r, err := alerts.ParseRule("r-1", []byte(body))
		if err == nil {
			err = r.Validate(windows.Default())
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	invalid := []struct{ name, body, field string }{
		{"no kind", `{"client":"a","window":"1m","limit":1,"thresholds":[1]}`, "kind"},
		{"unknown kind", `{"kind":"cpu","client":"a","window":"1m","thresholds":[1]}`, "kind"},
		{"no client", `{"kind":"client_usage","window":"1m","limit":1,"thresholds":[1]}`, "client"},
		{"endpoint on a client rule", `{"kind":"client_usage","client":"a","endpoint":"GET /","window":"1m","limit":1,"thresholds":[1]}`, "endpoint"},
		{"no endpoint", `{"kind":"endpoint_p99","window":"1m","thresholds":[1]}`, "endpoint"},
		{"window not kept", `{"kind":"client_usage","client":"a","window":"5m","limit":1,"thresholds":[1]}`, "window"},
		{"no window", `{"kind":"client_usage","client":"a","limit":1,"thresholds":[1]}`, "window"},
		{"no limit", `{"kind":"client_usage","client":"a","window":"1m","thresholds":[1]}`, "limit"},
		{"limit on a rate", `{"kind":"client_error_rate","client":"a","window":"1m","limit":3,"thresholds":[1]}`, "limit"},
		{"quota not a limit's name", `{"kind":"client_usage","client":"a","window":"1m","quota":"gold","thresholds":[80]}`, "quota"},
		{"quota window not kept", `{"kind":"client_usage","client":"a","quota":"5m","thresholds":[80]}`, "quota"},
		{"quota bad endpoint", `{"kind":"client_usage","client":"a","quota":"1m get /x","thresholds":[80]}`, "quota"},
		{"quota and limit", `{"kind":"client_usage","client":"a","quota":"1m","limit":5,"thresholds":[80]}`, "limit"},
		{"quota on a rate", `{"kind":"client_error_rate","client":"a","window":"1m","quota":"1m","thresholds":[5]}`, "quota"},
		{"quota's window differs", `{"kind":"client_usage","client":"a","window":"1h","quota":"1m","thresholds":[80]}`, "window"},
		{"quota thresholds decreasing", `{"kind":"client_usage","client":"a","quota":"1m","thresholds":[100,80]}`, "thresholds"},
		{"quota threshold too high", `{"kind":"client_usage","client":"a","quota":"1m","thresholds":[80,20000]}`, "thresholds"},
		{"quota threshold negative", `{"kind":"client_usage","client":"a","quota":"1m","thresholds":[-80]}`, "thresholds"},
		{"no thresholds", `{"kind":"client_usage","client":"a","window":"1m","limit":1,"thresholds":[]}`, "thresholds"},
		{"decreasing", `{"kind":"client_usage","client":"a","window":"1m","limit":1,"thresholds":[100,80]}`, "thresholds"},
		{"zero", `{"kind":"client_usage","client":"a","window":"1m","limit":1,"thresholds":[0]}`, "thresholds"},
		{"rate over 100", `{"kind":"endpoint_error_rate","endpoint":"*","window":"1m","thresholds":[150]}`, "thresholds"},
		{"min_calls on usage", `{"kind":"client_usage","client":"a","window":"1m","limit":1,"thresholds":[1],"min_calls":3}`, "min_calls"},
		{"webhook not http", `{"kind":"endpoint_p99","endpoint":"*","window":"1m","thresholds":[1],"webhook":{"url":"ftp://x/y","secret":"s"}}`, "webhook.url"},
		{"webhook without secret", `{"kind":"endpoint_p99","endpoint":"*","window":"1m","thresholds":[1],"webhook":{"url":"https://x/y"}}`, "webhook.secret"},
		{"name differs", `{"name":"other","kind":"endpoint_p99","endpoint":"*","window":"1m","thresholds":[1]}`, "name"},
	}
	for _, c := range invalid {
		r, err := alerts.ParseRule("r-1", []byte(c.body))
		if err == nil {
			err = r.Validate(windows.Default())
		}
		var fe *alerts.FieldErrors
		if !errors.As(err, &fe) || fe.Fields[c.field] == "" {
			t.Errorf("%s: %v, want an error on %s", c.name, err, c.field)
		}
	}
	for _, body := range []string{`{"kind":"client_usage","color":"red"}`, `{} {}`, `[1]`} {
		if _, err := alerts.ParseRule("r", []byte(body)); err == nil {
			t.Errorf("%s: parsed", body)
		}
	}
	r := alerts.Rule{Name: "bad name!", Kind: alerts.EndpointP99, Endpoint: "*", Window: "1m", Thresholds: []float64{1}}
	if err := r.Validate(windows.Default()); err == nil || !strings.Contains(err.Error(), "name") {
		t.Errorf("a name with a space and '!': %v", err)
	}
}

// A rule on a quota takes the quota's window, and compiles to the scope
// of the policy limit it watches, without thresholds in calls (those come
// from the policy in force).
func TestRuleOnAQuota(t *testing.T) {
	r, err := alerts.ParseRule("q", []byte(`{"kind":"client_usage","client":"*","quota":"1h shop POST /orders","thresholds":[80,100]}`))
	if err == nil {
		err = r.Validate(windows.Default())
	}
	if err != nil || r.Window != "1h" {
		t.Fatalf("%+v %v, want the window 1h filled in", r, err)
	}
	rules := alerts.NewRules()
	rules.Set(r)
	if own, every := rules.Current().ForClient("alice"); len(own)+len(every) != 0 {
		t.Errorf("a rule on a quota among the others: %+v %+v", own, every)
	}
	_, every := rules.Current().QuotaRulesFor("alice")
	if len(every) != 1 || every[0].OnQuota == nil || len(every[0].Limits) != 0 || every[0].Step != time.Hour {
		t.Fatalf("compiled %+v", every)
	}
	q := every[0].OnQuota
	if q.Scope != (quotas.Limit{Window: "1h", Service: "shop", Endpoint: "POST /orders"}).Scope() || q.EndpointKey != "shop: POST /orders" {
		t.Errorf("scope %+v", q)
	}
	if got := every[0].Calls(0, 999); !alerts.Crosses(got, 799, 800, true) || alerts.Crosses(got, 798, 799, true) {
		t.Errorf("80 %% of 999 = %v calls: the 800th call crosses it, not the 799th", got)
	}
	if got := every[0].Calls(1, 10); got != 10 {
		t.Errorf("100 %% of 10 = %v calls", got)
	}
}

func TestRulePublicHidesTheSecret(t *testing.T) {
	r := alerts.Rule{Name: "r", Webhook: &alerts.Webhook{URL: "https://h/x", Secret: "top-secret"}}
	p := r.Public()
	if p.Webhook.URL != "https://h/x" || !p.Webhook.SecretSet {
		t.Errorf("public webhook %+v", p.Webhook)
	}
	b, err := alerts.RuleCodec{}.Encode(&r)
	if err != nil || !strings.Contains(string(b), "top-secret") {
		t.Fatalf("stored form must keep the secret: %s %v", b, err)
	}
}

func TestRulesIndexAndThresholds(t *testing.T) {
	rules := alerts.NewRules()
	rules.Set(alerts.Rule{Name: "a", Kind: alerts.ClientUsage, Client: "alice", Window: "1m", Limit: 999, Thresholds: []float64{80, 100}})
	rules.Set(alerts.Rule{Name: "b", Kind: alerts.ClientErrorRate, Client: alerts.Any, Window: "1h", Thresholds: []float64{5}})
	rules.Set(alerts.Rule{Name: "c", Kind: alerts.EndpointP99, Endpoint: "GET /x", Window: "1m", Thresholds: []float64{250}})
	s := rules.Current()
	own, every := s.ForClient("alice")
	if len(own) != 1 || len(every) != 1 || own[0].Limits[0] != 800 || own[0].Limits[1] != 999 || own[0].Step != time.Minute {
		t.Errorf("alice's rules %+v %+v", own, every)
	}
	if own, _ := s.ForClient("bob"); len(own) != 0 {
		t.Errorf("bob has own rules %+v", own)
	}
	if _, every := s.ForClient("bob"); every[0].Limits[0] != 0.05 || every[0].MinCalls != 1 {
		t.Errorf("every client's rule %+v", every[0])
	}
	if own, every := s.ForEndpoint("GET /x"); len(own) != 1 || len(every) != 0 || own[0].Limits[0] != 250 {
		t.Errorf("endpoint rules %+v %+v", own, every)
	}
	rules.Delete("a")
	if own, _ := rules.Current().ForClient("alice"); len(own) != 0 || len(rules.Current().List()) != 2 {
		t.Errorf("after delete: %+v", rules.Current().List())
	}
}

func TestAlertIDIsDeterministic(t *testing.T) {
	id := alerts.AlertID("r", alerts.ClientUsage, "alice", time.Minute, 1700000000, 80, 1000)
	if again := alerts.AlertID("r", alerts.ClientUsage, "alice", time.Minute, 1700000000, 80, 1000); again != id || len(id) != 32 {
		t.Fatalf("%s then %s", id, again)
	}
	for _, other := range []string{
		alerts.AlertID("r", alerts.ClientUsage, "alice", time.Minute, 1700000060, 80, 1000),
		alerts.AlertID("r", alerts.ClientUsage, "alice", time.Minute, 1700000000, 100, 1000),
		alerts.AlertID("r", alerts.ClientUsage, "bob", time.Minute, 1700000000, 80, 1000),
		alerts.AlertID("r", alerts.ClientUsage, "alice", time.Minute, 1700000000, 80, 2000),
		alerts.AlertID("ra", alerts.ClientUsage, "lice", time.Minute, 1700000000, 80, 1000),
		alerts.QuotaAlertID("r", "alice", "1m", time.Minute, 1700000000, 80, 1000),
	} {
		if other == id {
			t.Errorf("another window, threshold, key, limit, split or quota gives the same id %s", id)
		}
	}
	// IDs of rules without a quota are those fired before quotas: a
	// replay across the upgrade gives the same.
	if id != "b0d91b296d893a6527a52277fd6294fd" {
		t.Errorf("id %s, not the one fired before rules on quotas", id)
	}
	q := alerts.QuotaAlertID("r", "alice", "1m", time.Minute, 1700000000, 80, 1000)
	if q != alerts.QuotaAlertID("r", "alice", "1m", time.Minute, 1700000000, 80, 1000) ||
		q == alerts.QuotaAlertID("r", "alice", "1m POST /x", time.Minute, 1700000000, 80, 1000) {
		t.Errorf("quota ids: deterministic, and one per quota")
	}
}

// An endpoint of another service is named by its table key, service
// first: its rules are its own, not the default service's same route.
func TestEndpointRulesOfAService(t *testing.T) {
	r := alerts.Rule{Name: "shop-p99", Kind: alerts.EndpointP99, Endpoint: "shop: GET /x", Window: "1m", Thresholds: []float64{250}}
	if err := r.Validate(windows.Default()); err != nil {
		t.Fatalf("a rule on another service's endpoint: %v", err)
	}
	rules := alerts.NewRules()
	rules.Set(r)
	s := rules.Current()
	if own, _ := s.ForEndpoint("shop: GET /x"); len(own) != 1 {
		t.Errorf("shop's GET /x has %d rules, want 1", len(own))
	}
	if own, _ := s.ForEndpoint("GET /x"); len(own) != 0 {
		t.Errorf("the default service's GET /x has shop's rule: %+v", own)
	}
}

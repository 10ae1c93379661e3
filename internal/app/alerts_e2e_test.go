package app_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/alerts"
	"github.com/inarious/inarious/internal/app"
	"github.com/inarious/inarious/internal/app/apptest"
	"github.com/inarious/inarious/internal/testutil"
)

// webhook records the alerts it receives, checking each signature.
type webhook struct {
	t      *testing.T
	secret string
	mu     sync.Mutex
	got    []alerts.Alert
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if err := alerts.Verify(h.secret, r.Header.Get(alerts.SignatureHeader), body, time.Minute, time.Now()); err != nil {
		h.t.Errorf("webhook signature: %v", err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var a alerts.Alert
	if err := json.Unmarshal(body, &a); err != nil {
		h.t.Errorf("webhook body %s: %v", body, err)
	}
	h.mu.Lock()
	h.got = append(h.got, a)
	h.mu.Unlock()
}

func (h *webhook) alerts() []alerts.Alert {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]alerts.Alert(nil), h.got...)
}

// startWithWebhook starts the one-command system (with opts) whose
// alerts go to a webhook receiver, and the receiver.
func startWithWebhook(t *testing.T, opts ...apptest.Option) (*webhook, *system) {
	hook := &webhook{t: t, secret: "e2e-secret"}
	srv := httptest.NewServer(hook)
	t.Cleanup(srv.Close)
	opts = append(opts, func(c *app.Config) { c.AlertWebhookURL, c.AlertWebhookSecret = srv.URL, hook.secret })
	return hook, &system{apptest.Start(t, nil, opts...)}
}

// metric is the value of a counter on /metrics.
func (s *system) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get(s.Base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^inarious_` + name + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// TestAlertFiresOncePerWindowAndReachesTheWebhook: a rule put through the
// API fires once when a client's calls in the minute cross its limit, however
// many calls follow; the alert reaches the global webhook signed, is active
// on GET /alerts with the same id, and is counted on /metrics.
func TestAlertFiresOncePerWindowAndReachesTheWebhook(t *testing.T) {
	hook, s := startWithWebhook(t)
	rule := `{"kind":"client_usage","client":"e2e-alerted","window":"1m","limit":10,"thresholds":[100]}`
	if code := s.call(t, http.MethodPut, "/alerts/rules/e2e-minute", "", rule); code != http.StatusCreated {
		t.Fatalf("PUT rule = %d", code)
	}
	if code := s.call(t, http.MethodGet, "/alerts/rules/e2e-minute", "", ""); code != http.StatusOK {
		t.Fatalf("GET rule = %d", code)
	}
	if code := s.call(t, http.MethodPut, "/alerts/rules/e2e-bad", "", `{"kind":"client_usage","client":"x","window":"7m","limit":1,"thresholds":[1]}`); code != http.StatusBadRequest {
		t.Errorf("a rule on a window not kept = %d, want 400", code)
	}
	// 40 calls in one minute (one request time), in two batches.
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for batch := range 2 {
		var items []map[string]any
		for i := range 20 {
			items = append(items, map[string]any{"id": fmt.Sprintf("a%d-%d", batch, i), "client": "e2e-alerted", "httpMethod": "GET",
				"route": "/orders/{id}", "httpStatus": 200, "requestTime": now})
		}
		body, _ := json.Marshal(items)
		resp, err := http.Post(s.Base+"/events", "application/json", bytes.NewReader(body))
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /events: %v %v", resp, err)
		}
		resp.Body.Close()
	}
	testutil.Eventually(t, 30*time.Second, s.counts(t, "e2e-alerted", map[string]uint64{"GET /orders/{id}": 40}))
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		got := hook.alerts()
		return len(got) > 0 && s.metric(t, "alerts_delivered_total") == 1, fmt.Sprintf("webhook got %+v", got)
	})
	got := hook.alerts()
	a := got[0]
	if len(got) != 1 || a.Rule != "e2e-minute" || a.Client != "e2e-alerted" || a.Value != 10 || a.Threshold != 100 {
		t.Fatalf("webhook got %+v, want one alert at the 10th call", got)
	}
	if fired := s.metric(t, "alerts_fired_total"); fired != 1 {
		t.Errorf("alerts_fired_total = %v after 40 calls past a limit of 10, want 1", fired)
	}
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		var active struct{ Alerts []alerts.Alert }
		s.getJSON(t, "/alerts", &active)
		return len(active.Alerts) == 1 && active.Alerts[0].ID == a.ID, fmt.Sprintf("GET /alerts: %+v", active)
	})
	if code := s.call(t, http.MethodDelete, "/alerts/rules/e2e-minute", "", ""); code != http.StatusNoContent {
		t.Errorf("DELETE rule = %d", code)
	}
	if code := s.call(t, http.MethodGet, "/alerts/rules/e2e-minute", "", ""); code != http.StatusNotFound {
		t.Errorf("GET deleted rule = %d", code)
	}
}

// TestQuotaAlertFollowsThePolicy: a rule on a client's share of its quota
// per minute, with the policy put through the API: the 8th and 10th calls
// against 10 fire 80 % and 100 % once each, with the quota, the policy, the
// limit and the share in the signed body; the policy raised to 100 through
// the API reaches the running worker, whose next crossings are shares of
// 100 (new ids), without a restart.
func TestQuotaAlertFollowsThePolicy(t *testing.T) {
	hook, s := startWithWebhook(t, func(c *app.Config) { c.Quotas = true })
	const client = "e2e-quota-alerted" // the test's own calls (127.0.0.1) have no policy
	if code := s.call(t, http.MethodPut, "/quotas/"+client, "", `{"limits":[{"window":"1m","limit":10},{"window":"1d","limit":1000}]}`); code != http.StatusCreated {
		t.Fatalf("PUT policy = %d", code)
	}
	if code := s.call(t, http.MethodPut, "/alerts/rules/e2e-share", "", `{"kind":"client_usage","client":"*","quota":"1m","thresholds":[80,100]}`); code != http.StatusCreated {
		t.Fatalf("PUT rule = %d", code)
	}
	// Every call at one request time: one minute's bucket, however long the test.
	at := time.Now().UTC().Format(time.RFC3339Nano)
	sent := 0
	send := func(n int) {
		items := make([]map[string]any, n)
		for i := range items {
			items[i] = map[string]any{"id": fmt.Sprintf("q%d", sent), "client": client, "httpMethod": "GET", "route": "/orders/{id}",
				"httpStatus": 200, "requestTime": at}
			sent++
		}
		s.postEvents(t, items)
	}
	send(12)
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		got := hook.alerts()
		return len(got) >= 2, fmt.Sprintf("webhook got %+v", got)
	})
	// Both crossings are in one poll of the deliverer, which posts a poll's
	// alerts at once: in any order.
	got := hook.alerts()[:2]
	slices.SortFunc(got, func(a, b alerts.Alert) int { return cmp.Compare(a.Threshold, b.Threshold) })
	for i, want := range []struct{ calls, share float64 }{{8, 80}, {10, 100}} {
		a := got[i]
		if a.Rule != "e2e-share" || a.Client != client || a.Quota != "1m" || a.Policy != client || a.Limit != 10 ||
			a.Value != want.calls || a.Share != want.share || a.Threshold != want.share {
			t.Errorf("alert %d = %+v, want %v calls, %v %% of %s's 10", i, a, want.calls, want.share, client)
		}
	}
	if code := s.call(t, http.MethodPut, "/quotas/"+client, "", `{"limits":[{"window":"1m","limit":100}]}`); code != http.StatusOK {
		t.Fatalf("PUT raised policy = %d", code)
	}
	// Until the worker's view has the new policy, calls are judged against
	// 10 (all passed); from then on, 80 % of 100 fires once reached. When
	// the count is past 100 by then, 100 % fires first and 80 % with a
	// later event: keep calling until it came.
	testutil.Eventually(t, 60*time.Second, func() (bool, string) {
		for _, a := range hook.alerts() {
			if a.Limit == 100 && a.Threshold == 80 {
				return true, ""
			}
		}
		if sent < 400 {
			send(10)
		}
		return false, fmt.Sprintf("%d calls sent; webhook got %+v", sent, hook.alerts())
	})
	var raised []alerts.Alert
	for _, a := range hook.alerts()[2:] {
		if a.Limit != 100 || a.Threshold == 100 && a.Value < 100 {
			t.Errorf("after the raise: %+v", a)
		}
		raised = append(raised, a)
	}
	i := slices.IndexFunc(raised, func(a alerts.Alert) bool { return a.Threshold == 80 })
	if i < 0 {
		t.Fatalf("no 80 %% alert of the raised limit among %+v", raised)
	}
	if r := raised[i]; r.Value < 80 || r.Share != r.Value || r.ID == got[0].ID {
		t.Errorf("80 %% of the raised limit: %+v", r)
	}
}

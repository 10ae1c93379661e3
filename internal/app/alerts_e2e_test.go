package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
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
	hook := &webhook{t: t, secret: "e2e-secret"}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	s := &system{apptest.Start(t, nil, func(c *app.Config) {
		c.AlertWebhookURL, c.AlertWebhookSecret = srv.URL, hook.secret
	})}
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

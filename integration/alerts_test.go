package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/alerts"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/internal/windows"
)

// hookReceiver is a webhook that checks every delivery's signature and
// records when each alert arrived; while down it answers 503.
type hookReceiver struct {
	t      *testing.T
	secret string
	mu     sync.Mutex
	down   bool
	tries  map[string]int       // attempts per alert ID
	first  map[string]time.Time // first accepted delivery per ID
	byKey  map[string][]string  // accepted IDs per client
	copies int                  // accepted deliveries, duplicates included
}

func newHookReceiver(t *testing.T, secret string) (*hookReceiver, string) {
	h := &hookReceiver{t: t, secret: secret, tries: map[string]int{}, first: map[string]time.Time{}, byKey: map[string][]string{}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return h, srv.URL
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	at := time.Now()
	body, _ := io.ReadAll(r.Body)
	if err := alerts.Verify(h.secret, r.Header.Get(alerts.SignatureHeader), body, time.Minute, at); err != nil {
		h.t.Errorf("webhook signature: %v", err)
	}
	var a alerts.Alert
	if err := json.Unmarshal(body, &a); err != nil || a.ID != r.Header.Get(alerts.IdempotencyHeader) {
		h.t.Errorf("webhook body %s, %s %q: %v", body, alerts.IdempotencyHeader, r.Header.Get(alerts.IdempotencyHeader), err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tries[a.ID]++
	if h.down {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	h.copies++
	if _, ok := h.first[a.ID]; !ok {
		h.first[a.ID] = at
		h.byKey[a.Client] = append(h.byKey[a.Client], a.ID)
	}
}

func (h *hookReceiver) setDown(down bool) {
	h.mu.Lock()
	h.down = down
	h.mu.Unlock()
}

func (h *hookReceiver) arrived(id string) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	at, ok := h.first[id]
	return at, ok
}

// sendCalls posts n calls of client at request time at through POST
// /events, and returns when the API took them.
func sendCalls(t *testing.T, a *apiProc, client string, n int, at time.Time) {
	t.Helper()
	items := make([]map[string]any, n)
	for i := range items {
		items[i] = map[string]any{"client": client, "httpMethod": "GET", "route": "/orders/{id}", "httpStatus": 200,
			"requestTime": at.UTC().Format(time.RFC3339Nano)}
	}
	body, _ := json.Marshal(items)
	resp, err := http.Post(a.base+"/events", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /events = %d", resp.StatusCode)
	}
}

func putRule(t *testing.T, a *apiProc, name, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, a.base+"/alerts/rules/"+name, bytes.NewReader([]byte(body)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT rule %s = %d: %s", name, resp.StatusCode, b)
	}
}

// TestAlertDeliveredAfterKill: the crossing-to-webhook latency with a
// receiver up, then a worker killed (kill -9) while the receiver is down,
// between a crossing and its delivery: once a worker runs again and the
// receiver is back, the alert arrives, with the same id, and no other id
// for that client and window.
func TestAlertDeliveredAfterKill(t *testing.T) {
	needKafka(t)
	resetKafka(t)
	dir := t.TempDir()
	const secret, limit = "it-secret", 50
	hook, url := newHookReceiver(t, secret)
	workerArgs := []string{"--alert-webhook-url", url, "--alert-webhook-secret", secret, "--alert-backoff", "100ms", "--alert-attempts", "100000"}

	a := startAPI(t, filepath.Join(dir, "api"))
	w := startWorker(t, "worker-1", filepath.Join(dir, "w1"), workerArgs...)
	putRule(t, a, "it-every-client", fmt.Sprintf(`{"kind":"client_usage","client":"*","window":"1m","limit":%d,"thresholds":[100]}`, limit))

	// Latency: per client, limit-1 calls, then the crossing call, timed from
	// the moment the API took it to the webhook's arrival.
	const samples = 100
	var lat []time.Duration
	for i := range samples {
		client := fmt.Sprintf("lat-%d", i)
		at := time.Now()
		sendCalls(t, a, client, limit-1, at)
		time.Sleep(50 * time.Millisecond) // the 49 counted before the crossing is sent
		sent := time.Now()
		sendCalls(t, a, client, 1, at)
		id := alerts.AlertID("it-every-client", alerts.ClientUsage, client, time.Minute, windows.StartUnix(at.UnixNano(), time.Minute), 100, limit)
		var arrived time.Time
		testutil.Eventually(t, 60*time.Second, func() (bool, string) {
			var ok bool
			arrived, ok = hook.arrived(id)
			return ok, fmt.Sprintf("alert %s of %s not delivered", id, client)
		})
		lat = append(lat, arrived.Sub(sent))
	}
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	report(t, "crossing_to_webhook samples=%d p50=%s p90=%s p99=%s max=%s", samples, ms(p(0.5)), ms(p(0.9)), ms(p(0.99)), ms(lat[len(lat)-1]))
	// The target (p99 ≤ 1 s) is a benchmark's, reported, not asserted: on
	// a shared machine the tail is the scheduler's.

	// The kill: the receiver is down, the crossing's alert is being retried.
	hook.setDown(true)
	at := time.Now()
	sendCalls(t, a, "killed", limit+20, at)
	id := alerts.AlertID("it-every-client", alerts.ClientUsage, "killed", time.Minute, windows.StartUnix(at.UnixNano(), time.Minute), 100, limit)
	testutil.Eventually(t, 60*time.Second, func() (bool, string) {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		return hook.tries[id] >= 2, fmt.Sprintf("alert %s attempted %d times", id, hook.tries[id])
	})
	w.kill()
	killed := time.Now()
	hook.setDown(false)
	w = startWorker(t, "worker-1", filepath.Join(dir, "w1"), workerArgs...)
	var arrived time.Time
	testutil.Eventually(t, 90*time.Second, func() (bool, string) {
		var ok bool
		arrived, ok = hook.arrived(id)
		return ok, fmt.Sprintf("alert %s not delivered after the kill", id)
	})
	// More calls in the same window: no new alert.
	sendCalls(t, a, "killed", 30, at)
	time.Sleep(2 * time.Second)
	hook.mu.Lock()
	ids, copies := hook.byKey["killed"], hook.copies
	for client, got := range hook.byKey {
		if len(got) != 1 {
			t.Errorf("client %s: alert ids %v, want one (replays fire the same id)", client, got)
		}
	}
	hook.mu.Unlock()
	if len(ids) != 1 || ids[0] != id {
		t.Errorf("client killed: alert ids %v, want only %s", ids, id)
	}
	report(t, "kill_between_crossing_and_delivery delivered_after_kill=%s same_id=%v deliveries_total=%d alerts=%d",
		ms(arrived.Sub(killed)), len(ids) == 1 && ids[0] == id, copies, samples+1)
	if took, clean := w.stop(30 * time.Second); !clean {
		t.Errorf("the worker (with its deliverer) did not stop on SIGTERM within %v", took)
	}
}

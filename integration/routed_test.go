package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/internal/usagehttp"
)

// routedRead is one GET /usage/{client} of the reader loop.
type routedRead struct {
	at     time.Time
	status int
	wrong  string // why a 200 (or other status) was a wrong answer; "" if right
}

// TestRoutedReadsSurviveKill: the API holds no copy of the table
// (--usage-source=workers) and forwards each read to the worker owning the
// client's partition. Counts read through it are exact; while a worker is
// killed with kill -9 and its partitions move, every answer is either exact
// or 503 with Retry-After, 503s fall only inside the takeover, and answers
// come back after it.
func TestRoutedReadsSurviveKill(t *testing.T) {
	needKafka(t)
	resetKafka(t)
	dir := t.TempDir()
	tr := newTraffic(t, 1000)
	gw := newGroupWatcher(t)
	names := []string{"worker-1", "worker-2", "worker-3"}
	workers := map[string]*proc{}
	for _, n := range names {
		workers[n] = startWorker(t, n, filepath.Join(dir, n), "--query-listen", "127.0.0.1:0")
	}
	a := startAPI(t, filepath.Join(dir, "api"), "--usage-source", "workers")
	gw.waitUntil(time.Now(), 90*time.Second, "3 members owning all partitions", func(g groupState) bool { return g.covered(names...) })
	ready := tr.waitReady(a, 60*time.Second)

	tr.burst(a, 3*len(tr.clients), 32)
	exact := tr.waitCounts(a, 90*time.Second)
	want := tr.snapshot()
	t.Logf("ready after %v; %d events for %d clients counted exactly through the workers after %v", ready, tr.sent(), len(want), exact)

	// No copy of the table; top clients are the merge of the workers' own.
	if _, err := os.Stat(filepath.Join(dir, "api", "api", "view")); !os.IsNotExist(err) {
		t.Errorf("the workers-mode API has a view directory (stat err %v)", err)
	}
	checkTopClients(t, tr, a, want)
	checkWindowedReads(t, tr, a, want, 50)
	// Endpoints are routed too, to the owners in the endpoints group.
	endpointsBefore := tr.waitEndpointsExact(a, simulatedEndpoints(), 60*time.Second)
	if code, body, err := tr.call(a, http.MethodGet, "/dashboard", "", ""); err != nil || code != http.StatusOK {
		t.Errorf("GET /dashboard in workers mode = %d %.200s (err %v), want 200", code, body, err)
	}

	// Readers loop over every client until told to stop.
	var (
		mu     sync.Mutex
		reads  []routedRead
		stop   = make(chan struct{})
		wg     sync.WaitGroup
		next   atomic.Int64
		noResp atomic.Int64
	)
	clients := tr.clients
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c := clients[int(next.Add(1))%len(clients)]
				rd := readRouted(tr, a, c, want[c])
				if rd.status == 0 {
					noResp.Add(1)
					continue
				}
				mu.Lock()
				reads = append(reads, rd)
				mu.Unlock()
			}
		}()
	}
	// Every client answered exactly before the kill.
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		return next.Load() > int64(2*len(clients)), "readers did not go round twice"
	})

	victim := "worker-2"
	owned := gw.describe().Members[victim]
	tKill := time.Now()
	workers[victim].kill()
	_, assigned := gw.waitUntil(tKill, 60*time.Second, "worker-1 and worker-3 to own all partitions", func(g groupState) bool { return g.covered("worker-1", "worker-3") })
	// Answers come back: a full round of 200s after the takeover.
	var tBack time.Time
	testutil.EventuallyEvery(t, 60*time.Second, 50*time.Millisecond, func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		ok := 0
		for i := len(reads) - 1; i >= 0 && reads[i].status == http.StatusOK && reads[i].at.After(tKill.Add(assigned)); i-- {
			ok++
		}
		if ok >= 2*len(clients) {
			tBack = time.Now()
			return true, ""
		}
		return false, fmt.Sprintf("%d consecutive 200s since the reassignment or the last refusal, want %d", ok, 2*len(clients))
	})
	close(stop)
	wg.Wait()

	var n200, n503 int
	var first503, last503 time.Time
	for _, rd := range reads {
		if rd.wrong != "" {
			t.Errorf("wrong answer at %v after the kill: %s", rd.at.Sub(tKill), rd.wrong)
			continue
		}
		switch rd.status {
		case http.StatusOK:
			n200++
		case http.StatusServiceUnavailable:
			n503++
			if first503.IsZero() {
				first503 = rd.at
			}
			last503 = rd.at
			if rd.at.Before(tKill) {
				t.Errorf("503 %v before the kill", tKill.Sub(rd.at))
			}
		}
	}
	if n := noResp.Load(); n > 0 {
		t.Errorf("%d reads got no response from the API", n)
	}
	if n503 == 0 {
		t.Errorf("no 503 at all: the kill of %s (partitions %v) was not noticed", victim, owned)
	}
	window := last503.Sub(first503)
	t.Logf("killed %s (partitions %v); group reassigned after %v; reads %d: %d exact, %d 503; first 503 %v after the kill, last %v after; answers back after %v",
		victim, owned, assigned.Round(time.Millisecond), len(reads), n200, n503,
		first503.Sub(tKill).Round(time.Millisecond), last503.Sub(tKill).Round(time.Millisecond), tBack.Sub(tKill).Round(time.Millisecond))
	// 503s only inside the takeover: none once the group is reassigned and
	// the API's owners map (refreshed every second and on a miss) follows.
	if limit := tKill.Add(assigned + 5*time.Second); last503.After(limit) {
		t.Errorf("503 at %v after the kill, after the takeover ended (%v)", last503.Sub(tKill), assigned)
	}
	// The two survivors list every client, exactly, between them, and
	// answer windowed reads of the victim's clients from the joins.
	checkTopClients(t, tr, a, want)
	checkWindowedReads(t, tr, a, want, 50)
	// The endpoints group's survivors hold the victim's endpoints, exactly.
	endpointsAfter := tr.waitEndpointsExact(a, simulatedEndpoints(), 60*time.Second)
	report(t, "clients=%d workers=3 reads=%d exact=%d unavailable_503=%d wrong=0 group_reassigned=%s first_503=%s last_503=%s unavailable_window=%s answers_back=%s endpoints_exact_before=%s endpoints_exact_after_takeover=%s",
		len(clients), len(reads), n200, n503, ms(assigned), ms(first503.Sub(tKill)), ms(last503.Sub(tKill)), ms(window), ms(tBack.Sub(tKill)), ms(endpointsBefore), ms(endpointsAfter))
}

// checkTopClients pages through GET /usage (1,000 a page) and checks it
// lists every client of want with its exact total, in order.
func checkTopClients(t *testing.T, tr *traffic, a *apiProc, want map[string]map[string]uint64) {
	t.Helper()
	seen := map[string]bool{}
	var last *usagehttp.ClientTotal
	cursor := ""
	for page := 0; ; page++ {
		code, body, err := tr.call(a, http.MethodGet, "/usage?limit=1000"+cursor, "", "")
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET /usage page %d in workers mode = %d %s (err %v)", page, code, body, err)
		}
		var p usagehttp.UsagePage
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		if p.Total < len(want) {
			t.Errorf("total_clients %d, want at least %d", p.Total, len(want))
		}
		for _, ct := range p.Clients {
			if last != nil && (ct.Total > last.Total || ct.Total == last.Total && ct.Client <= last.Client) {
				t.Errorf("%s (%d) listed after %s (%d)", ct.Client, ct.Total, last.Client, last.Total)
			}
			last = &ct
			eps, ok := want[ct.Client]
			if !ok {
				continue // a client of the test's own reads
			}
			var total uint64
			for _, n := range eps {
				total += n
			}
			if ct.Total != total || seen[ct.Client] {
				t.Errorf("%s listed with %d (again: %v), want %d once", ct.Client, ct.Total, seen[ct.Client], total)
			}
			seen[ct.Client] = true
		}
		if p.NextCursor == "" {
			break
		}
		cursor = "&cursor=" + p.NextCursor
	}
	if len(seen) != len(want) {
		t.Errorf("GET /usage listed %d of the %d clients", len(seen), len(want))
	}
}

// checkWindowedReads reads the last hour of n clients by minute and as one
// window: both add up to the client's exact total (all traffic is recent).
func checkWindowedReads(t *testing.T, tr *traffic, a *apiProc, want map[string]map[string]uint64, n int) {
	t.Helper()
	for _, c := range tr.clients[:n] {
		var total uint64
		for _, k := range want[c] {
			total += k
		}
		code, body, err := tr.call(a, http.MethodGet, "/usage/"+c+"/series?step=1m&from=-1h", "", "")
		var s usagehttp.Series
		if err != nil || code != http.StatusOK || json.Unmarshal(body, &s) != nil {
			t.Fatalf("series of %s in workers mode = %d %.200s (err %v)", c, code, body, err)
		}
		var sum uint64
		for _, b := range s.Buckets {
			sum += b.Total
		}
		code, body, err = tr.call(a, http.MethodGet, "/usage/"+c+"?window=1h", "", "")
		var w usagehttp.WindowUsage
		if err != nil || code != http.StatusOK || json.Unmarshal(body, &w) != nil {
			t.Fatalf("?window=1h of %s in workers mode = %d %.200s (err %v)", c, code, body, err)
		}
		if sum != total || w.Total != total {
			t.Errorf("%s: minute buckets of the last hour sum to %d, ?window=1h says %d; want %d", c, sum, w.Total, total)
		}
	}
}

// readRouted reads one client's usage and judges it against want: a 200
// must equal want exactly (traffic has stopped); a 503 must say when to
// retry; anything else is wrong. No response has status 0.
func readRouted(tr *traffic, a *apiProc, client string, want map[string]uint64) routedRead {
	return readPhased(tr, a, client, &readPhase{lo: map[string]map[string]uint64{client: want}, exact: true})
}

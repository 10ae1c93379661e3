package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/routing"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/internal/usagehttp"
)

var queryAddrRe = regexp.MustCompile(`msg="worker query listening" addr=(\S+)`)

// readPhase is what a read started in it may answer: per client and
// endpoint at least lo, and exactly lo when exact.
type readPhase struct {
	lo       map[string]map[string]uint64
	exact    bool
	inflight atomic.Int64 // reads judged by this phase not yet answered
}

// directRead is one GET /query/usage sent straight to the stalled worker,
// as an API with a stale owners map would.
type directRead struct {
	sent, done time.Time
	status     int
	total      uint64 // of a 200
	client     string
}

// TestRoutedReadsSurviveStall: a worker serving routed reads is stopped
// with SIGSTOP until its partitions have moved to the other worker (past
// the 6 s session timeout) and events of its clients were counted there,
// then continued with SIGCONT. Reads through the API stay exact (or 503)
// all along and move to the other worker; reads that reach the stalled
// worker itself (queued on its socket, answered the moment it runs again)
// are refused, not answered from its stale state (its lease of the group
// membership aged past routing.LeaseTTL); and counts and endpoints are
// still exact after it rejoined.
func TestRoutedReadsSurviveStall(t *testing.T) {
	needKafka(t)
	resetKafka(t)
	dir := t.TempDir()
	tr := newTraffic(t, 300)
	gw := newGroupWatcher(t)
	names := []string{"worker-1", "worker-2"}
	workers := map[string]*proc{}
	for _, n := range names {
		workers[n] = startWorker(t, n, filepath.Join(dir, n), "--query-listen", "127.0.0.1:0")
	}
	a := startAPI(t, filepath.Join(dir, "api"), "--usage-source", "workers")
	gw.waitUntil(time.Now(), 60*time.Second, "2 members owning all partitions", func(g groupState) bool { return g.covered(names...) })
	tr.waitReady(a, 60*time.Second)
	tr.burst(a, 3*len(tr.clients), 32)
	tr.waitCounts(a, 60*time.Second)
	want0 := tr.snapshot()
	tr.waitEndpointsExact(a, simulatedEndpoints(), 30*time.Second)

	victim, survivor := "worker-2", "worker-1"
	owned := gw.describe().Members[victim]
	victimClients := tr.clientsOn(owned)
	if len(owned) == 0 || len(victimClients) == 0 {
		t.Fatalf("%s owns partitions %v, clients %d", victim, owned, len(victimClients))
	}
	victimAddr := workers[victim].waitLog(queryAddrRe, 5*time.Second)

	var phase atomic.Pointer[readPhase]
	phase.Store(&readPhase{lo: want0, exact: true})
	var (
		mu     sync.Mutex
		reads  []routedRead
		direct []directRead
		stop   = make(chan struct{})
		wg     sync.WaitGroup
		next   atomic.Int64
	)
	for range 8 { // through the API
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				c := tr.clients[int(next.Add(1))%len(tr.clients)]
				ph := phase.Load()
				ph.inflight.Add(1)
				if phase.Load() != ph { // replaced meanwhile: judge by the new one
					ph.inflight.Add(-1)
					continue
				}
				rd := readPhased(tr, a, c, ph)
				ph.inflight.Add(-1)
				mu.Lock()
				reads = append(reads, rd)
				mu.Unlock()
			}
		}()
	}
	// Straight to the victim (421 for others' clients), with a client that
	// outwaits the stall.
	hc := &http.Client{Timeout: 45 * time.Second}
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := i; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				c := tr.clients[(j*7)%len(tr.clients)]
				dr := directRead{sent: time.Now(), client: c}
				resp, err := hc.Get("http://" + victimAddr + routing.Path + "?client=" + url.QueryEscape(c))
				dr.done = time.Now()
				if err == nil {
					dr.status = resp.StatusCode
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						if v, err := new(codecs.ClientUsage).Decode(b); err == nil {
							dr.total = v.(*activitypb.ClientUsage).GetTotal()
						}
					}
				}
				mu.Lock()
				direct = append(direct, dr)
				mu.Unlock()
				time.Sleep(20 * time.Millisecond) // pacing, not waiting for anything
			}
		}()
	}
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		return next.Load() > int64(2*len(tr.clients)), "readers did not go round twice"
	})

	// Reads started before the events below are judged exactly.
	exact0 := phase.Swap(&readPhase{lo: want0})
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		return exact0.inflight.Load() == 0, "reads of the exact phase still in flight"
	})
	tStop := time.Now()
	workers[victim].pause()
	// Events of every client while it is stalled: its partitions' wait for
	// the takeover, so its state falls behind.
	tr.burst(a, len(tr.clients), 16)
	want1 := tr.snapshot()
	_, moved := gw.waitUntil(tStop, 45*time.Second, survivor+" to own all partitions", func(g groupState) bool { return g.covered(survivor) })
	tr.waitCounts(a, 30*time.Second)
	phase.Store(&readPhase{lo: want1, exact: true})
	// Reads of the victim's clients are answered, exactly, by the survivor.
	for _, c := range victimClients[:min(20, len(victimClients))] {
		if rd := readPhased(tr, a, c, phase.Load()); rd.status != http.StatusOK || rd.wrong != "" {
			t.Errorf("%s with %s stalled: status %d %s", c, victim, rd.status, rd.wrong)
		}
	}
	stalled := time.Since(tStop)
	if stalled < 10*time.Second {
		// Past the session timeout by a margin, whatever the takeover took.
		time.Sleep(10*time.Second - stalled)
		stalled = time.Since(tStop)
	}
	tCont := time.Now()
	workers[victim].resume()

	// It rejoins; everything is exact again, also what it serves.
	gw.waitUntil(tCont, 45*time.Second, "both members owning partitions again", func(g groupState) bool { return g.covered(names...) })
	tr.waitCounts(a, 30*time.Second)
	exactAfterCont := time.Since(tCont)
	tr.waitEndpointsExact(a, simulatedEndpoints(), 30*time.Second)
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, d := range direct {
			if d.sent.After(tCont) && d.status == http.StatusOK {
				n++
			}
		}
		return n >= 10, fmt.Sprintf("%d answers of the victim since SIGCONT, want 10", n)
	})
	close(stop)
	wg.Wait()

	var n200, n503 int
	for _, rd := range reads {
		if rd.wrong != "" {
			t.Errorf("wrong answer through the API %v after SIGSTOP: %s", rd.at.Sub(tStop), rd.wrong)
		}
		switch rd.status {
		case http.StatusOK:
			n200++
		case http.StatusServiceUnavailable:
			n503++
		}
	}
	var queued, queuedRefused, after200 int
	for _, d := range direct {
		switch {
		case d.done.Before(tCont):
			if d.status == http.StatusOK && d.total != total(want0[d.client]) {
				t.Errorf("direct read of %s before the stall: total %d, want %d", d.client, d.total, total(want0[d.client]))
			}
		case d.sent.Before(tCont):
			// Sent while it was stopped: answered only after SIGCONT, when
			// its partitions had long been another's.
			queued++
			if d.status == http.StatusOK {
				t.Errorf("direct read of %s queued during the stall answered 200 (total %d, now %d) %v after SIGCONT: from stale state",
					d.client, d.total, total(want1[d.client]), d.done.Sub(tCont))
			} else if d.status != 0 {
				queuedRefused++
			}
		default:
			if d.status == http.StatusOK {
				after200++
				if d.total != total(want1[d.client]) {
					t.Errorf("direct read of %s %v after SIGCONT: total %d, want %d", d.client, d.sent.Sub(tCont), d.total, total(want1[d.client]))
				}
			}
		}
	}
	if queuedRefused == 0 {
		t.Errorf("no direct read was queued during the stall and refused after it (%d queued): the case was not exercised", queued)
	}
	acked, counted, dups, missing := tr.tally(a)
	report(t, "clients=%d workers=2 stalled=%s survivor_owned_all_after=%s reads=%d exact=%d unavailable_503=%d wrong=0 direct_queued_in_stall=%d refused=%d direct_200_after_cont=%d acknowledged=%d counted=%d duplicates=%d missing=%d counts_exact_after_cont=%s",
		len(tr.clients), ms(stalled), ms(moved), len(reads), n200, n503, queued, queuedRefused, after200, acked, counted, dups, missing, ms(exactAfterCont))
}

func total(eps map[string]uint64) uint64 {
	var n uint64
	for _, k := range eps {
		n += k
	}
	return n
}

// readPhased reads one client's usage through the API and judges a 200
// against ph: every endpoint at least ph.lo's count, and exactly it when
// ph.exact; a 503 must say when to retry.
func readPhased(tr *traffic, a *apiProc, client string, ph *readPhase) routedRead {
	want := ph.lo[client]
	req, _ := http.NewRequest(http.MethodGet, a.base+"/usage/"+client, nil)
	resp, err := tr.http.Do(req)
	rd := routedRead{at: time.Now()}
	if err != nil {
		rd.wrong = fmt.Sprintf("%s: no response: %v", client, err)
		return rd
	}
	defer resp.Body.Close()
	rd.status = resp.StatusCode
	switch resp.StatusCode {
	case http.StatusOK:
		var u usagehttp.ClientUsage
		if err := json.NewDecoder(resp.Body).Decode(&u); err != nil {
			rd.wrong = fmt.Sprintf("%s: undecodable 200: %v", client, err)
			return rd
		}
		for ep, n := range want {
			if got := u.Endpoints[ep].Count; got < n || ph.exact && got != n {
				rd.wrong = fmt.Sprintf("%s %q: %d, want %d (exact %v)", client, ep, got, n, ph.exact)
				return rd
			}
		}
		if u.Client != client || ph.exact && (len(u.Endpoints) != len(want) || u.Total != total(want)) {
			rd.wrong = fmt.Sprintf("%s: client %q total %d endpoints %d, want total %d endpoints %d", client, u.Client, u.Total, len(u.Endpoints), total(want), len(want))
		}
	case http.StatusServiceUnavailable:
		if resp.Header.Get("Retry-After") == "" {
			rd.wrong = client + ": 503 without Retry-After"
		}
	default:
		rd.wrong = fmt.Sprintf("%s: status %d", client, resp.StatusCode)
	}
	return rd
}

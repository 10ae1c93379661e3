package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inarious/inarious/internal/usagehttp"
)

// readJudge reads /usage/{client} through the API from a few goroutines
// while traffic runs, and judges each answer: a 200 may count no more
// requests of the client than had been sent when it came back (more is a
// duplicate), and no fewer than a read of it that had finished before this
// one started (counts never go down); a 503 must carry Retry-After; nothing
// else is right.
type readJudge struct {
	tr   *traffic
	stop chan struct{}
	wg   sync.WaitGroup

	mu          sync.Mutex
	floor       map[string]uint64 // highest total read of a client so far
	n, ok       int
	unavailable int
	notCounted  int // 404: none of the client's events counted yet
	wrong       []string
	halted      atomic.Bool
}

func (tr *traffic) judgeReads(a *apiProc, readers int) *readJudge {
	j := &readJudge{tr: tr, stop: make(chan struct{}), floor: map[string]uint64{}}
	var next atomic.Int64
	for range readers {
		j.wg.Add(1)
		go func() {
			defer j.wg.Done()
			for {
				select {
				case <-j.stop:
					return
				default:
				}
				j.read(a, tr.clients[int(next.Add(1))%len(tr.clients)])
				time.Sleep(5 * time.Millisecond) // pacing, not waiting for anything
			}
		}()
	}
	return j
}

func (j *readJudge) read(a *apiProc, client string) {
	j.mu.Lock()
	floor := j.floor[client]
	j.mu.Unlock()
	wrong := ""
	var total uint64
	code := 0
	resp, err := j.tr.http.Get(a.base + "/usage/" + client)
	ceiling := j.tr.started(client)
	if err == nil {
		j.tr.responses.Add(1) // its own event, as call counts it
		code = resp.StatusCode
		defer resp.Body.Close()
	}
	switch {
	case err != nil:
		wrong = fmt.Sprintf("%s: no response: %v", client, err)
	case code == http.StatusOK:
		var u usagehttp.ClientUsage
		if err := json.NewDecoder(resp.Body).Decode(&u); err != nil {
			wrong = fmt.Sprintf("%s: undecodable 200: %v", client, err)
			break
		}
		total = u.Total
		if total > ceiling || total < floor {
			wrong = fmt.Sprintf("%s: total %d, want %d..%d (highest read before it started .. requests sent by its answer)", client, total, floor, ceiling)
		}
	case code == http.StatusServiceUnavailable:
		if resp.Header.Get("Retry-After") == "" {
			wrong = client + ": 503 without Retry-After"
		}
	case code == http.StatusNotFound && floor == 0:
		// None of its events counted yet, and no read said otherwise.
	default:
		wrong = fmt.Sprintf("%s: status %d", client, code)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.n++
	switch {
	case wrong != "":
		j.wrong = append(j.wrong, time.Now().Format("15:04:05.000 ")+wrong)
	case code == http.StatusOK:
		j.ok++
		j.floor[client] = max(j.floor[client], total)
	case code == http.StatusServiceUnavailable:
		j.unavailable++
	case code == http.StatusNotFound:
		j.notCounted++
	}
}

// underLoad starts steady traffic (250 requests/s) and readers judged by a
// readJudge, both halted when the test ends, and returns once 500 requests
// were answered.
func (tr *traffic) underLoad(a *apiProc, readers int, what string) (*load, *readJudge) {
	tr.t.Helper()
	l := tr.background(a, 4*time.Millisecond)
	tr.t.Cleanup(func() { l.halt(tr.t) })
	rd := tr.judgeReads(a, readers)
	tr.t.Cleanup(func() { rd.halt() })
	l.waitSent(tr.t, 30*time.Second, l.sent.Load()+500, what)
	return l, rd
}

// halt stops the readers and returns the judge, with its tallies final.
func (j *readJudge) halt() *readJudge {
	if j.halted.CompareAndSwap(false, true) {
		close(j.stop)
	}
	j.wg.Wait()
	return j
}

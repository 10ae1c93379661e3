package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// probeClient is one probe identity and the count of its requests that the
// usage table must show once they are all counted.
type probeClient struct {
	id       string
	expected uint64
}

// freshness measures how long after a response its count shows in
// GET /usage/{client}. Each probe identity has at most one request in
// flight, so after its nth response the table must show expected = base+n;
// the identity's usage is then polled every interval until Total >= expected.
//
// The figure is an upper bound: from the probe's response being received to
// the poll response that shows the count being received. The true moment lies
// after the previous poll was sent, so the bound is loose by at most one poll
// interval plus one poll round trip.
type freshness struct {
	client   *http.Client
	target   string
	poller   string
	interval time.Duration
	timeout  time.Duration

	free chan *probeClient
	wg   sync.WaitGroup

	mu        sync.Mutex
	hist      *Histogram
	probes    int64
	timedOut  int64
	skipped   int64
	failed    int64
	polls     int64
	pollFails int64
}

// FreshnessReport is the freshness part of a Report.
type FreshnessReport struct {
	// Since is where a probe's time starts: a request's response, or the
	// send of a batch (otlp, events: the export to the count).
	Since string `json:"since"`
	// Probes is how many probe requests were answered and then looked for.
	Probes int64 `json:"probes"`
	// Seen is how many showed within the timeout; the percentiles are theirs.
	Seen Summary `json:"seen"`
	// TimedOut never showed within FreshnessTimeout.
	TimedOut int64 `json:"timed_out"`
	// Skipped were due as probes while every probe identity was busy.
	Skipped int64 `json:"skipped"`
	// Failed probe requests got no response, so their count is unknown; the
	// identity is retired.
	Failed int64 `json:"failed"`
	// Polls is the number of GET /usage/{probe} sent, PollErrors of them failed.
	Polls      int64 `json:"polls"`
	PollErrors int64 `json:"poll_errors"`
}

func newFreshness(client *http.Client, target, poller string, ids []string, interval, timeout time.Duration) *freshness {
	f := &freshness{
		client: client, target: target, poller: poller,
		interval: interval, timeout: timeout,
		free: make(chan *probeClient, len(ids)),
		hist: NewHistogram(),
	}
	for _, id := range ids {
		f.free <- &probeClient{id: id}
	}
	return f
}

// usageTotal reads the Total of client as seen by GET /usage/{client}; 0 when unknown.
func usageTotal(ctx context.Context, c *http.Client, target, client, as string) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target+"/usage/"+client, nil)
	if err != nil {
		return 0, err
	}
	if as != "" {
		req.Header.Set("X-Forwarded-For", as)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		var u struct {
			Total uint64 `json:"total"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&u); err != nil {
			return 0, fmt.Errorf("usage of %s: %w", client, err)
		}
		return u.Total, nil
	case http.StatusNotFound:
		_, _ = io.Copy(io.Discard, resp.Body)
		return 0, nil
	default:
		_, _ = io.Copy(io.Discard, resp.Body)
		return 0, fmt.Errorf("usage of %s: status %d", client, resp.StatusCode)
	}
}

// baseline reads what each probe identity already has counted, so the
// identities may be reused across runs.
func (f *freshness) baseline(ctx context.Context) error {
	n := len(f.free)
	for i := 0; i < n; i++ {
		pc := <-f.free
		total, err := usageTotal(ctx, f.client, f.target, pc.id, f.poller)
		if err != nil {
			return fmt.Errorf("freshness baseline: %w", err)
		}
		pc.expected = total
		f.free <- pc
	}
	return nil
}

// acquire takes a free probe identity, or returns nil (and counts a skip).
func (f *freshness) acquire() *probeClient {
	select {
	case pc := <-f.free:
		return pc
	default:
		f.mu.Lock()
		f.skipped++
		f.mu.Unlock()
		return nil
	}
}

// answered is called when pc's request got a response (ok), which adds
// counted to pc's count from since on, or failed (ok false). A request is
// counted whatever its status, from its response on; a batch's items are
// counted once taken, from the batch's send on.
func (f *freshness) answered(ctx context.Context, pc *probeClient, since time.Time, ok bool, counted uint64) {
	if !ok {
		f.mu.Lock()
		f.failed++
		f.mu.Unlock()
		return // unknown whether it was counted: retire the identity
	}
	if counted == 0 { // a refused batch: nothing to wait for
		f.free <- pc
		return
	}
	pc.expected += counted
	f.mu.Lock()
	f.probes++
	f.mu.Unlock()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		if f.await(ctx, pc, since) {
			f.free <- pc
		}
	}()
}

// await polls until pc's count shows, and records how long that took. It
// reports false when it did not show, and the identity is retired.
func (f *freshness) await(ctx context.Context, pc *probeClient, received time.Time) bool {
	deadline := received.Add(f.timeout)
	tick := time.NewTicker(f.interval)
	defer tick.Stop()
	for {
		pctx, cancel := context.WithDeadline(ctx, deadline)
		total, err := usageTotal(pctx, f.client, f.target, pc.id, f.poller)
		cancel()
		now := time.Now()
		f.mu.Lock()
		f.polls++
		if err != nil {
			f.pollFails++
		}
		if err == nil && total >= pc.expected {
			f.hist.Record(now.Sub(received))
			f.mu.Unlock()
			return true
		}
		if !now.Before(deadline) || ctx.Err() != nil {
			f.timedOut++
			f.mu.Unlock()
			return false
		}
		f.mu.Unlock()
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
}

// wait lets the probes in flight finish; each ends by its timeout.
func (f *freshness) wait() { f.wg.Wait() }

func (f *freshness) report() *FreshnessReport {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &FreshnessReport{
		Probes:     f.probes,
		Seen:       f.hist.Summary(),
		TimedOut:   f.timedOut,
		Skipped:    f.skipped,
		Failed:     f.failed,
		Polls:      f.polls,
		PollErrors: f.pollFails,
	}
}

package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/bits"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// NewTransport is a keep-alive transport holding exactly conns connections to one host.
func NewTransport(conns int) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
}

// workerStats is what one worker measured; merged at the end.
type workerStats struct {
	latency  *Histogram
	sendLag  *Histogram
	classes  [6]int64 // index status/100; 0: no response
	codes    map[int]int64
	firstErr error
	requests int64
	items    int64 // spans or events the server took
}

func newWorkerStats() *workerStats {
	return &workerStats{latency: NewHistogram(), sendLag: NewHistogram(), codes: map[int]int64{}}
}

// Run drives the target as cfg says and reports what it measured. Requests
// that got no response count as errors; any HTTP status counts as a
// response. Run itself fails only when the run could not start.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Target = strings.TrimRight(cfg.Target, "/")
	if cfg.Seed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		cfg.Seed = binary.LittleEndian.Uint64(b[:]) | 1
	}
	// Emails must be new in every run, even one repeating a seed.
	var idb [6]byte
	_, _ = rand.Read(idb[:])
	runID := hex.EncodeToString(idb[:])
	transport := NewTransport(cfg.Connections)
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: cfg.Timeout}

	var fresh *freshness
	if cfg.ProbeEvery > 0 {
		// The polls have their own connections: they neither queue behind the
		// load nor take its connections.
		pt := NewTransport(cfg.ProbeClients + 1)
		defer pt.CloseIdleConnections()
		pc := &http.Client{Transport: pt, Timeout: cfg.Timeout}
		ids := probeIdentities(cfg.ProbeClients, bits.RotateLeft64(cfg.Seed, 17))
		fresh = newFreshness(pc, cfg.Target, PollerIdentity, ids, cfg.PollInterval, cfg.FreshnessTimeout)
		if err := fresh.baseline(ctx); err != nil {
			return nil, err
		}
	}
	if cfg.Warmup && cfg.Mix.has(UsageGet) {
		if err := warmup(ctx, client, cfg); err != nil {
			return nil, err
		}
	}

	table := cfg.Mix.table()
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	var (
		slots   chan slot
		counter atomic.Int64
	)
	if cfg.Rate > 0 {
		slots = make(chan slot, cfg.Connections)
		go schedule(ctx, start, cfg.Rate, cfg.Requests, deadline, slots)
	}
	// next hands a worker its next request: from the schedule (open loop) or
	// straight away (closed loop).
	next := func() (slot, bool) {
		if slots != nil {
			s, ok := <-slots
			return s, ok
		}
		seq := counter.Add(1) - 1
		if (cfg.Requests > 0 && seq >= cfg.Requests) || !time.Now().Before(deadline) || ctx.Err() != nil {
			return slot{}, false
		}
		return slot{seq: seq}, true
	}

	stats := make([]*workerStats, cfg.Connections)
	var wg sync.WaitGroup
	for i := range stats {
		st := newWorkerStats()
		stats[i] = st
		w := &worker{cfg: &cfg, client: client, runID: runID, idx: i}
		rng := mrand.New(mrand.NewPCG(cfg.Seed, uint64(i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				s, ok := next()
				if !ok {
					return
				}
				sc := table[rng.IntN(len(table))]
				c := rng.IntN(cfg.Clients)
				as := ClientIdentity(c)
				var probe *probeClient
				if fresh != nil && s.seq%int64(cfg.ProbeEvery) == int64(cfg.ProbeEvery)-1 {
					// A batch's items are the probe's; a request is counted under its caller.
					if probe = fresh.acquire(); probe != nil && !isIngest(sc) {
						as = probe.id
					}
				}
				sent := time.Now()
				from := sent
				if !s.intended.IsZero() {
					from = s.intended
					st.sendLag.Record(sent.Sub(s.intended))
				}
				var (
					code  int
					err   error
					items int64
				)
				if isIngest(sc) {
					probeID := ""
					if probe != nil {
						probeID = probe.id
					}
					code, items, err = w.ingest(ctx, sc, as, probeID)
				} else {
					code, err = w.do(ctx, sc, c, as)
				}
				done := time.Now()
				st.requests++
				st.items += items
				st.latency.Record(done.Sub(from))
				st.classes[min(code/100, 5)]++
				if code != 0 {
					st.codes[code]++
				}
				if err != nil && st.firstErr == nil {
					st.firstErr = err
				}
				switch {
				case probe == nil:
				case isIngest(sc):
					// From the export: the batch's items are counted from its send on.
					fresh.answered(ctx, probe, from, code != 0 && err == nil, uint64(items))
				default:
					fresh.answered(ctx, probe, done, code != 0, 1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if fresh != nil {
		fresh.wait()
	}
	return buildReport(cfg, stats, elapsed, fresh), nil
}

// warmup makes each load client exist in the usage table (one GET /healthz
// as each), then waits until all of them show, so usage-get reads rows.
func warmup(ctx context.Context, client *http.Client, cfg Config) error {
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var (
		next    atomic.Int64
		errOnce sync.Once
		first   error
		wg      sync.WaitGroup
	)
	fail := func(err error) { errOnce.Do(func() { first = err; cancel() }) }
	each := func(fn func(i int) error) {
		for range min(cfg.Connections, cfg.Clients, 8) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= cfg.Clients || wctx.Err() != nil {
						return
					}
					if err := fn(i); err != nil {
						fail(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		next.Store(0)
	}
	each(func(i int) error {
		req, err := http.NewRequestWithContext(wctx, http.MethodGet, cfg.Target+"/healthz", nil)
		if err != nil {
			return err
		}
		req.Header.Set("X-Forwarded-For", ClientIdentity(i))
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		discard(resp.Body)
		resp.Body.Close()
		return nil
	})
	if first != nil {
		return first
	}
	// Then wait until every client shows: few pollers, polling slowly, so a
	// target that never shows them is not hammered for the whole minute.
	var missing atomic.Int64
	each(func(i int) error {
		for {
			total, err := usageTotal(wctx, client, cfg.Target, ClientIdentity(i), PollerIdentity)
			if err == nil && total > 0 {
				return nil
			}
			if wctx.Err() != nil {
				missing.Add(1)
				return nil
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	if n := missing.Load(); n > 0 {
		return fmt.Errorf("warm-up: %d of %d load clients did not show in GET /usage/{client} within 60s", n, cfg.Clients)
	}
	return first
}

func buildReport(cfg Config, stats []*workerStats, elapsed time.Duration, fresh *freshness) *Report {
	lat, lag := NewHistogram(), NewHistogram()
	r := &Report{
		Target:      cfg.Target,
		Mix:         cfg.Mix.String(),
		Clients:     cfg.Clients,
		Connections: cfg.Connections,
		Rate:        cfg.Rate,
		Elapsed:     elapsed.Seconds(),
		Codes:       map[string]int64{},
	}
	for _, st := range stats {
		lat.Merge(st.latency)
		lag.Merge(st.sendLag)
		r.Requests += st.requests
		r.Items += st.items
		r.Status.Errors += st.classes[0]
		r.Status.C1xx += st.classes[1]
		r.Status.C2xx += st.classes[2]
		r.Status.C3xx += st.classes[3]
		r.Status.C4xx += st.classes[4]
		r.Status.C5xx += st.classes[5]
		for code, n := range st.codes {
			r.Codes[strconv.Itoa(code)] += n
		}
		if st.firstErr != nil && r.FirstError == "" {
			r.FirstError = st.firstErr.Error()
		}
	}
	if elapsed > 0 {
		r.Throughput = float64(r.Requests) / elapsed.Seconds()
		r.ItemThroughput = float64(r.Items) / elapsed.Seconds()
	}
	r.Latency = lat.Summary()
	if cfg.Rate > 0 {
		s := lag.Summary()
		r.SendLag = &s
	}
	if fresh != nil {
		r.Freshness = fresh.report()
		r.Freshness.Since = "response"
		if cfg.Mix.has(OTLP) || cfg.Mix.has(Events) {
			r.Freshness.Since = "send of a batch, response of a request"
			if !cfg.Mix.hasOther(OTLP, Events) {
				r.Freshness.Since = "send"
			}
		}
	}
	return r
}

package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseMix(t *testing.T) {
	m, err := ParseMix("usage-get:8, users-create:2,healthz,usage-list:3")
	if err != nil {
		t.Fatal(err)
	}
	want := Mix{{UsageGet, 8}, {UsersCreate, 2}, {Healthz, 1}, {UsageList, 3}}
	if !slices.Equal(m, want) {
		t.Fatalf("got %v, want %v", m, want)
	}
	if got := len(m.table()); got != 14 {
		t.Errorf("table has %d entries, want 14", got)
	}
	if again, err := ParseMix(m.String()); err != nil || !slices.Equal(again, m) {
		t.Errorf("String does not round-trip: %q -> %v, %v", m.String(), again, err)
	}
	if m, _ := ParseMix("mixed"); !slices.Equal(m, Mixed) {
		t.Errorf("mixed = %v", m)
	}
	for _, bad := range []string{"", "nope", "usage-get:0", "usage-get:x", "healthz:1001"} {
		if _, err := ParseMix(bad); err == nil {
			t.Errorf("ParseMix(%q) accepted", bad)
		}
	}
}

func TestValidateBoundsEveryRun(t *testing.T) {
	ok := Defaults()
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Config){
		"no duration":   func(c *Config) { c.Duration = 0 },
		"bad target":    func(c *Config) { c.Target = "127.0.0.1:8080" },
		"no clients":    func(c *Config) { c.Clients = 0 },
		"too many":      func(c *Config) { c.Clients = MaxClients + 1 },
		"no conns":      func(c *Config) { c.Connections = 0 },
		"negative rate": func(c *Config) { c.Rate = -1 },
		"no probe ids":  func(c *Config) { c.ProbeClients = 0 },
		"no poll":       func(c *Config) { c.PollInterval = 0 },
	} {
		c := Defaults()
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestIdentitiesAreDistinctAddresses(t *testing.T) {
	seen := map[string]bool{PollerIdentity: true}
	for i := 0; i < MaxClients; i++ {
		id := ClientIdentity(i)
		if seen[id] {
			t.Fatalf("client %d: %s twice", i, id)
		}
		seen[id] = true
	}
	for _, id := range probeIdentities(4096, math.MaxUint64-5) {
		if seen[id] {
			t.Fatalf("probe identity %s collides", id)
		}
		seen[id] = true
	}
	if ClientIdentity(0) != "198.18.0.1" || ClientIdentity(255) != "198.18.1.0" {
		t.Errorf("identities: %s %s", ClientIdentity(0), ClientIdentity(255))
	}
}

// nearestRank is the textbook percentile of sorted values.
func nearestRank(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p*float64(len(sorted))/100 - 1e-9))
	return sorted[max(rank, 1)-1]
}

func TestHistogramPercentiles(t *testing.T) {
	h := NewHistogram()
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	s := h.Summary()
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"p50", s.P50, 500}, {"p90", s.P90, 900}, {"p99", s.P99, 990}, {"p99.9", s.P999, 999},
		{"max", s.Max, 1000}, {"mean", s.Mean, 500.5},
	} {
		if math.Abs(c.got-c.want) > c.want*0.001+0.001 {
			t.Errorf("%s = %vms, want %vms ±0.1%%", c.name, c.got, c.want)
		}
	}
	if s.Count != 1000 {
		t.Errorf("count %d", s.Count)
	}

	// Random, skewed values: within the histogram's 0.1% of a sorted slice.
	rng := rand.New(rand.NewPCG(1, 2))
	var vals []time.Duration
	h = NewHistogram()
	for i := 0; i < 20000; i++ {
		d := time.Duration(rng.ExpFloat64() * float64(3*time.Millisecond))
		vals = append(vals, d.Truncate(time.Microsecond))
		h.Record(d)
	}
	slices.Sort(vals)
	for _, p := range []float64{50, 90, 99, 99.9, 100} {
		got, want := h.Percentile(p), nearestRank(vals, p)
		if diff := math.Abs(float64(got - want)); diff > float64(want)*0.001+float64(time.Microsecond) {
			t.Errorf("p%v = %v, sorted slice says %v", p, got, want)
		}
	}

	// Merging is the same as recording into one.
	a, b := NewHistogram(), NewHistogram()
	a.Record(time.Millisecond)
	b.Record(3 * time.Millisecond)
	b.Record(-time.Second) // clamps to 0
	a.Merge(b)
	if a.Count() != 3 || a.Percentile(100) < 3*time.Millisecond-3*time.Microsecond {
		t.Errorf("merged: count %d max %v", a.Count(), a.Percentile(100))
	}
	if (NewHistogram().Summary() != Summary{}) {
		t.Error("empty histogram has a non-zero summary")
	}
}

func TestIntendedTimeDoesNotDrift(t *testing.T) {
	start := time.Unix(1000, 0)
	if got := IntendedTime(start, 3, 3_000_000); !got.Equal(start.Add(1_000_000 * time.Second)) {
		t.Errorf("3e6th request at rate 3/s: %v after start", got.Sub(start))
	}
	if got := IntendedTime(start, 1000, 7); !got.Equal(start.Add(7 * time.Millisecond)) {
		t.Errorf("got %v", got.Sub(start))
	}
}

// A slow consumer delays the sends but never moves the intended times.
func TestScheduleKeepsIntendedTimes(t *testing.T) {
	const rate, n, work = 1000.0, 20, 10 * time.Millisecond
	start := time.Now()
	out := make(chan slot)
	go schedule(context.Background(), start, rate, n, start.Add(time.Hour), out)
	var i int64
	for s := range out {
		lateBy := time.Since(s.intended)
		if s.seq != i {
			t.Fatalf("slot %d has seq %d", i, s.seq)
		}
		if !s.intended.Equal(IntendedTime(start, rate, i)) {
			t.Fatalf("slot %d intended %v after start, want %v", i, s.intended.Sub(start), IntendedTime(start, rate, i).Sub(start))
		}
		// The consumer has spent i*work before taking slot i, while slot i was
		// due at i ms: it must be taken late by at least the difference.
		if min := time.Duration(i) * (work - time.Millisecond); lateBy < min {
			t.Fatalf("slot %d taken %v after its intended time, at least %v expected", i, lateBy, min)
		}
		time.Sleep(work)
		i++
	}
	if i != n {
		t.Errorf("%d slots, want %d", i, n)
	}
}

func TestScheduleStopsAtDeadline(t *testing.T) {
	start := time.Now()
	out := make(chan slot, 100)
	schedule(context.Background(), start, 1000, 0, start.Add(10*time.Millisecond), out)
	var got []int64
	for s := range out {
		got = append(got, s.seq)
	}
	if len(got) != 10 { // due at 0..9 ms
		t.Errorf("got slots %v, want 0..9", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out = make(chan slot)
	schedule(ctx, time.Now().Add(time.Hour), 1, 0, time.Now().Add(2*time.Hour), out)
	if _, ok := <-out; ok {
		t.Error("a cancelled schedule sent a slot")
	}
}

func testConfig(target string) Config {
	c := Defaults()
	c.Target = target
	c.Clients = 5
	c.Connections = 4
	c.Duration = 30 * time.Second // the tests bound runs by Requests
	c.ProbeEvery = 0
	c.Seed = 42
	return c
}

func TestClosedLoopSendsExactlyRequests(t *testing.T) {
	f, srv := newFake(t, 0, 0)
	cfg := testConfig(srv.URL)
	cfg.Mix = Mix{{Healthz, 1}}
	cfg.Requests = 100
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests != 100 || rep.Status.C2xx != 100 || rep.Codes["200"] != 100 || rep.Latency.Count != 100 {
		t.Fatalf("report: %+v", rep)
	}
	if rep.SendLag != nil {
		t.Error("closed loop reports a send lag")
	}
	var total int
	for i := 0; i < cfg.Clients; i++ {
		total += f.total(ClientIdentity(i))
	}
	if total != 100 {
		t.Errorf("the fake counted %d requests under the load identities, want 100", total)
	}
}

func TestDurationBoundsRun(t *testing.T) {
	_, srv := newFake(t, 0, time.Millisecond)
	cfg := testConfig(srv.URL)
	cfg.Mix = Mix{{Healthz, 1}}
	cfg.Duration = 200 * time.Millisecond
	start := time.Now()
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests == 0 || time.Since(start) > 20*time.Second {
		t.Errorf("%d requests in %v", rep.Requests, time.Since(start))
	}
}

// With a server slower than the rate, latency counts from the intended send
// time, so the queueing in front of the one connection is in the figures.
func TestOpenLoopLatencyIncludesQueueing(t *testing.T) {
	_, srv := newFake(t, 0, 20*time.Millisecond)
	cfg := testConfig(srv.URL)
	cfg.Mix = Mix{{Healthz, 1}}
	cfg.Connections = 1
	cfg.Rate = 200
	cfg.Requests = 10
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests != 10 || rep.SendLag == nil {
		t.Fatalf("report: %+v", rep)
	}
	// Request 9 is due at 45 ms but cannot start before 9×20 ms of service.
	if rep.Latency.Max < 150 {
		t.Errorf("max latency %vms: the queueing behind a 20 ms server was left out", rep.Latency.Max)
	}
	if rep.SendLag.Max < 130 {
		t.Errorf("send lag max %vms, want >= 130ms", rep.SendLag.Max)
	}
}

func TestFreshnessMeasuresVisibilityLag(t *testing.T) {
	const lag = 40 * time.Millisecond
	_, srv := newFake(t, lag, 0)
	cfg := testConfig(srv.URL)
	cfg.Mix = Mix{{Healthz, 1}}
	cfg.Requests = 300
	cfg.Rate = 1000
	cfg.ProbeEvery = 10
	cfg.ProbeClients = 8
	cfg.PollInterval = time.Millisecond
	for run := 0; run < 2; run++ { // the same identities again: the baseline must be read
		rep, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		f := rep.Freshness
		if f == nil || f.Probes == 0 || f.Probes+f.Skipped != 30 || f.TimedOut != 0 || f.Failed != 0 {
			t.Fatalf("run %d: freshness %+v", run, f)
		}
		if f.Seen.Count != f.Probes || f.Polls < f.Probes {
			t.Errorf("run %d: %+v", run, f)
		}
		// Visible 40 ms after the request was counted: no probe can show much sooner.
		if f.Seen.P50 < 20 || f.Seen.Max > 5000 {
			t.Errorf("run %d: freshness %s with a %v lag", run, summaryLine(f.Seen), lag)
		}
	}
}

func TestFreshnessTimesOut(t *testing.T) {
	_, srv := newFake(t, -1, 0) // counts never show
	cfg := testConfig(srv.URL)
	cfg.Mix = Mix{{Healthz, 1}}
	cfg.Requests = 20
	cfg.ProbeEvery = 5
	cfg.FreshnessTimeout = 30 * time.Millisecond
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := rep.Freshness
	if f.Probes == 0 || f.TimedOut != f.Probes || f.Seen.Count != 0 {
		t.Errorf("freshness %+v", f)
	}
}

func TestFreshnessTrackerDirectly(t *testing.T) {
	fk, srv := newFake(t, 15*time.Millisecond, 0)
	fr := newFreshness(srv.Client(), srv.URL, PollerIdentity, []string{"198.19.9.9"}, time.Millisecond, 5*time.Second)
	if err := fr.baseline(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		pc := fr.acquire()
		if pc == nil {
			t.Fatalf("probe %d: identity still busy", i)
		}
		if fr.acquire() != nil {
			t.Fatal("one identity handed out twice")
		}
		req, _ := http.NewRequest("GET", srv.URL+"/healthz", nil)
		req.Header.Set("X-Forwarded-For", pc.id)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		fr.answered(context.Background(), pc, time.Now(), true, 1)
		fr.wait()
		if pc.expected != uint64(i+1) || fk.total(pc.id) != i+1 {
			t.Fatalf("probe %d: expected %d, fake counted %d", i, pc.expected, fk.total(pc.id))
		}
	}
	r := fr.report()
	if r.Probes != 3 || r.Seen.Count != 3 || r.Skipped != 3 || r.Seen.P50 < 7 {
		t.Errorf("report %+v", r)
	}
	// A failed probe retires its identity: its count is unknown.
	pc := fr.acquire()
	fr.answered(context.Background(), pc, time.Now(), false, 0)
	if fr.acquire() != nil || fr.report().Failed != 1 {
		t.Error("a failed probe's identity came back")
	}
}

func TestUsersScenarios(t *testing.T) {
	_, srv := newFake(t, 0, 0)
	cfg := testConfig(srv.URL)
	cfg.Mix = Mix{{UsersCRUD, 1}, {UsersCreate, 1}}
	cfg.Connections = 3
	cfg.Requests = 120
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status.C2xx != 120 {
		t.Fatalf("not all 2xx: %+v %v", rep.Status, rep.Codes)
	}
	for _, code := range []string{"200", "201", "204"} {
		if rep.Codes[code] == 0 {
			t.Errorf("no %s in %v: the crud cycle did not run", code, rep.Codes)
		}
	}
	// A second run with the same seed must not reuse an email (the fake complains).
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
}

func TestUsageListReadsFirstPage(t *testing.T) {
	f, srv := newFake(t, 0, 0)
	cfg := testConfig(srv.URL)
	cfg.Mix = Mix{{UsageList, 1}}
	cfg.Requests = 50
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status.C2xx != 50 {
		t.Errorf("usage-list: %v", rep.Codes)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bad) > 0 {
		t.Errorf("fake server saw: %v", f.bad)
	}
}

func TestUsageGetWarmsUpClients(t *testing.T) {
	f, srv := newFake(t, 10*time.Millisecond, 0)
	cfg := testConfig(srv.URL)
	cfg.Clients = 20
	cfg.Requests = 200
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status.C2xx != 200 {
		t.Errorf("usage-get after warm-up: %v", rep.Codes)
	}
	for i := 0; i < cfg.Clients; i++ {
		if f.total(ClientIdentity(i)) == 0 {
			t.Errorf("client %d was never used", i)
		}
	}
}

func TestErrorsAreCountedNotFatal(t *testing.T) {
	_, srv := newFake(t, 0, 0)
	cfg := testConfig(srv.URL)
	cfg.Mix = Mix{{Healthz, 1}}
	cfg.Requests = 10
	srv.Close()
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status.Errors != 10 || rep.FirstError == "" {
		t.Errorf("status %+v, first error %q", rep.Status, rep.FirstError)
	}
}

func TestReportOutput(t *testing.T) {
	_, srv := newFake(t, 0, 0)
	cfg := testConfig(srv.URL)
	cfg.Mix = Mix{{Healthz, 1}}
	cfg.Requests = 20
	cfg.Rate = 2000
	cfg.ProbeEvery = 4
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var text, js bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"req/s", "latency", "p99", "send lag", "freshness", "2xx 20"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"throughput_rps", "latency", "freshness", "status", "send_lag"} {
		if _, ok := back[k]; !ok {
			t.Errorf("JSON report lacks %q: %s", k, js.String())
		}
	}
}

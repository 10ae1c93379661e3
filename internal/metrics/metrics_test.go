package metrics_test

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/app"
	"github.com/inarious/inarious/internal/app/apptest"
	"github.com/inarious/inarious/internal/testutil"
)

// startSystem runs Inarious in-process on the embedded broker and returns
// the API's base URL once /readyz says ready.
func startSystem(t *testing.T, debugPages bool) string {
	t.Helper()
	return apptest.Start(t, nil, func(c *app.Config) {
		c.Kafka.Partitions = 2
		c.DebugPages = debugPages
	}).Base
}

func get(_ *testing.T, url string) int { return apptest.Status(url) }

// scrape returns every sample of /metrics keyed as exposed, e.g.
// `inarious_http_requests_total{method="GET",route="/healthz",status="200"}`.
func scrape(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: status %d", resp.StatusCode)
	}
	out := make(map[string]float64)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape: bad line %q", line)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scrape: %v", err)
	}
	return out
}

// sum adds the samples of name whose labels contain every one of with.
// seriesOf are the names of m's series of name with every label in with.
func seriesOf(m map[string]float64, name string, with ...string) []string {
	var out []string
	for k := range m {
		if k != name && !strings.HasPrefix(k, name+"{") {
			continue
		}
		ok := true
		for _, w := range with {
			ok = ok && strings.Contains(k, w)
		}
		if ok {
			out = append(out, k)
		}
	}
	return out
}

func sum(m map[string]float64, name string, with ...string) float64 {
	var s float64
	for _, k := range seriesOf(m, name, with...) {
		s += m[k]
	}
	return s
}

func TestMetricsAfterKnownTraffic(t *testing.T) {
	base := startSystem(t, false)
	for range 5 {
		if c := get(t, base+"/healthz"); c != http.StatusOK {
			t.Fatalf("GET /healthz: %d", c)
		}
	}
	for range 2 {
		if c := get(t, base+"/no/such/path"); c != http.StatusNotFound {
			t.Fatalf("GET /no/such/path: %d", c)
		}
	}

	m := scrape(t, base)
	want := map[string]float64{
		`inarious_http_requests_total{method="GET",route="/healthz",status="200"}`:                 5,
		`inarious_http_requests_total{method="GET",route="(unmatched)",status="404"}`:              2,
		`inarious_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"}`: 5,
		`inarious_view_recovered`:       1,
		`inarious_events_failed_total`:  0,
		`inarious_events_dropped_total`: 0,
	}
	for k, v := range want {
		got, ok := m[k]
		if !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	if _, ok := m[`inarious_http_request_duration_seconds_bucket{method="GET",route="/healthz",status="200",le="+Inf"}`]; !ok {
		t.Error("no latency histogram for GET /healthz")
	}

	// Every request served emits one event; delivery and counting trail it.
	// Scrapes are requests too, always one ahead, so they are left out.
	testutil.Eventually(t, 20*time.Second, func() (bool, string) {
		m = scrape(t, base)
		served := sum(m, "inarious_http_requests_total") - sum(m, "inarious_http_requests_total", `route="/metrics"`)
		emitted, processed := m["inarious_events_emitted_total"], m["inarious_usage_events_processed_total"]
		return served >= 7 && emitted >= served && processed >= served,
			fmt.Sprintf("served %v (want >= 7), emitted %v, processed %v: want both >= served", served, emitted, processed)
	})
	if m["inarious_usage_dead_lettered_total"] != 0 || m["inarious_usage_replays_skipped_total"] != 0 {
		t.Errorf("dead-lettered %v, replays %v; want 0, 0",
			m["inarious_usage_dead_lettered_total"], m["inarious_usage_replays_skipped_total"])
	}
	for _, consumer := range []string{`consumer="usage"`, `consumer="view"`} {
		if !hasSeries(m, "inarious_consumer_lag", consumer) {
			t.Errorf("no inarious_consumer_lag series for %s", consumer)
		}
	}
	// The worker commits about every second and the view follows the table.
	// Every scrape is itself a request, hence an event: polled every 10 ms,
	// there would always be one not yet committed. Poll slower than commits.
	// The endpoints group's input is written in transactions: the last
	// commit marker of each partition counts in its lag (as in Kafka's own
	// tools), so its lag at rest is at most one per partition.
	testutil.EventuallyEvery(t, 30*time.Second, 1500*time.Millisecond, func() (bool, string) {
		traffic := scrape(t, base)
		markers := sum(traffic, "inarious_consumer_lag", `consumer="endpoints"`)
		parts := float64(len(seriesOf(traffic, "inarious_consumer_lag", `consumer="endpoints"`)))
		lag, has := sum(traffic, "inarious_consumer_lag")-markers, hasSeries(traffic, "inarious_consumer_lag", `consumer="usage"`)
		return lag == 0 && markers <= parts && has && hasSeries(traffic, "inarious_consumer_lag", `consumer="endpoints-aggregator"`),
			fmt.Sprintf("consumer lag %v besides the endpoints group's %v (at most %v), usage and endpoints-aggregator series present: %v", lag, markers, parts, has)
	})
	for _, p := range []string{"/debug/goka/monitor/", "/debug/pprof/heap"} {
		if c := get(t, base+p); c != http.StatusNotFound {
			t.Errorf("debug pages are off by default, but GET %s = %d", p, c)
		}
	}
}

func hasSeries(m map[string]float64, name, with string) bool {
	for k := range m {
		if strings.HasPrefix(k, name+"{") && strings.Contains(k, with) {
			return true
		}
	}
	return false
}

func TestDebugPages(t *testing.T) {
	base := startSystem(t, true)
	for _, p := range []string{"/debug/goka/", "/debug/goka/monitor/", "/debug/goka/query/", "/debug/goka/monitor/view/0", "/debug/goka/monitor/processor/0", "/debug/pprof/", "/debug/pprof/heap"} {
		if c := get(t, base+p); c != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", p, c)
		}
	}
}

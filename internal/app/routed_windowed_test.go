package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/app"
	"github.com/inarious/inarious/internal/app/apptest"
	"github.com/inarious/inarious/internal/kafka/kafkatest"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/internal/usagehttp"
)

// startRoutedAPI runs an API with --usage-source=workers on cfg's brokers
// and returns its base URL once /readyz answers 200.
func startRoutedAPI(t *testing.T, cfg app.Config) string {
	t.Helper()
	cfg.UsageSource = app.UsageFromWorkers
	return startAPI(t, cfg, "routed API")
}

// startAPI runs an API alone (no worker, no query server) on cfg's brokers,
// on a free port and data directory of its own, stopped when the test
// ends, and returns its base URL once /readyz answers 200.
func startAPI(t *testing.T, cfg app.Config, name string) string {
	t.Helper()
	cfg.QueryListen = ""
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	addr := make(chan string, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() { done <- app.RunAPI(ctx, cfg, log, func(a string) { addr <- a }) }()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case err := <-done:
		cancel()
		t.Fatalf("%s did not start: %v", name, err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s stopped with: %v", name, err)
		}
	})
	testutil.Eventually(t, apptest.StartTimeout, func() (bool, string) {
		code := apptest.Status(base + "/readyz")
		return code == http.StatusOK, fmt.Sprintf("%s /readyz = %d", name, code)
	})
	return base
}

// startViewAndRouted runs a system in view mode whose worker serves
// queries, on an embedded broker of 4 partitions, and beside it an API in
// workers mode (its base URL).
func startViewAndRouted(t *testing.T) (*system, string) {
	t.Helper()
	kc := kafkatest.Config(t, 4)
	view := &system{apptest.Start(t, nil, func(c *app.Config) {
		c.Brokers, c.Kafka.Brokers = strings.Join(kc.Brokers, ","), kc.Brokers
		c.QueryListen = "127.0.0.1:0"
	})}
	return view, startRoutedAPI(t, view.Config)
}

// getBody is GET base+path: status and body.
func getBody(t *testing.T, base, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// In --usage-source=workers mode the windowed reads answer what view mode
// answers for the same events: the same buckets, closed ones included (1 s
// steps, no grace, so they close while the test runs), the same window sum,
// and the same 400s. One worker (with --query-listen and window joins) and
// a view-mode API run in one process; a workers-mode API beside them asks
// the worker.
func TestRoutedWindowedReadsEqualViewMode(t *testing.T) {
	kc := kafkatest.Config(t, 4)
	view := &system{apptest.Start(t, nil, func(c *app.Config) {
		c.Brokers, c.Kafka.Brokers = strings.Join(kc.Brokers, ","), kc.Brokers
		c.QueryListen = "127.0.0.1:0"
		c.Windows, c.WindowGrace = "1s:1h,1m:1h", 0
	})}
	routed := startRoutedAPI(t, view.Config)

	const client = "198.51.100.78"
	began := time.Now().UTC().Truncate(time.Second)
	calls := 0
	call := func() {
		view.call(t, "GET", "/healthz", client, "")
		calls++
	}
	call()
	call()
	// Keep calling until three 1 s buckets closed in view mode: more than
	// the row's latest close holds, so the workers must read closed buckets
	// from their joined windowed partitions to answer the same.
	finals := func(base string) int {
		var s usagehttp.Series
		code, body := getBody(t, base, "/usage/"+client+"/series?step=1s&from=-5m")
		if code != http.StatusOK {
			t.Fatalf("%s series: %d %s", base, code, body)
		}
		if err := json.Unmarshal([]byte(body), &s); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, b := range s.Buckets {
			if b.Final {
				n++
			}
		}
		return n
	}
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		call()
		return finals(view.Base) >= 3, "fewer than three final 1s buckets"
	})
	// A fixed span, so both answers are of the same question.
	q := url.Values{"step": {"1s"}, "from": {began.Add(-time.Minute).Format(time.RFC3339)}, "to": {time.Now().Add(time.Minute).UTC().Format(time.RFC3339)}}
	path := "/usage/" + client + "/series?" + q.Encode()
	var last string
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		var fromView, fromWorkers usagehttp.Series
		cv, bv := getBody(t, view.Base, path)
		cw, bw := getBody(t, routed, path)
		if cv != http.StatusOK || cw != http.StatusOK {
			t.Fatalf("series: view %d %s, workers %d %s", cv, bv, cw, bw)
		}
		_ = json.Unmarshal([]byte(bv), &fromView)
		_ = json.Unmarshal([]byte(bw), &fromWorkers)
		var n uint64
		var final int
		for _, b := range fromWorkers.Buckets {
			n += b.Endpoints["GET /healthz"]
			if b.Final {
				final++
			}
		}
		last = fmt.Sprintf("view %s\nworkers %s", bv, bw)
		return reflect.DeepEqual(fromView, fromWorkers) && n == uint64(calls) && final >= 3,
			fmt.Sprintf("%d of %d calls in the workers' buckets (%d final), or the modes differ:\n%s", n, calls, final, last)
	})
	t.Logf("equal series in both modes: %d calls in %d buckets", calls, finals(routed))

	for _, window := range []string{"10m", "1m"} {
		var wv, ww usagehttp.WindowUsage
		cv, bv := getBody(t, view.Base, "/usage/"+client+"?window="+window)
		cw, bw := getBody(t, routed, "/usage/"+client+"?window="+window)
		_ = json.Unmarshal([]byte(bv), &wv)
		_ = json.Unmarshal([]byte(bw), &ww)
		if cv != http.StatusOK || cw != http.StatusOK || ww.Total != uint64(calls) || !reflect.DeepEqual(wv.Endpoints, ww.Endpoints) || wv.Total != ww.Total || wv.Window != ww.Window {
			t.Errorf("window=%s: view %d %s, workers %d %s; want both %d calls", window, cv, bv, cw, bw, calls)
		}
	}
	// Queries neither mode can answer get the same 400.
	for _, bad := range []string{
		"/usage/" + client + "/series?step=1h",
		"/usage/" + client + "/series?step=1s&from=-1m&to=-2m",
		"/usage/" + client + "?window=2h", // beyond every kept retention
	} {
		cv, bv := getBody(t, view.Base, bad)
		cw, bw := getBody(t, routed, bad)
		var pv, pw map[string]any
		_ = json.Unmarshal([]byte(bv), &pv)
		_ = json.Unmarshal([]byte(bw), &pw)
		if cv != http.StatusBadRequest || cw != cv || pv["detail"] != pw["detail"] {
			t.Errorf("%s: view %d %s, workers %d %s; want the same 400", bad, cv, bv, cw, bw)
		}
	}
}

// GET /usage in workers mode, the merge of the workers' own top clients,
// lists what view mode lists: the same clients, totals and order, page by
// page through the cursor.
func TestRoutedTopClientsEqualViewMode(t *testing.T) {
	view, routed := startViewAndRouted(t)

	want := map[string]uint64{}
	for i := range 7 {
		client := fmt.Sprintf("198.51.100.%d", 10+i)
		for range 1 + i%4 {
			view.call(t, "GET", "/healthz", client, "")
			want[client]++
		}
	}
	// Pages of two, the test's clients only (the reads are counted too,
	// under the caller's address).
	list := func(base string) ([]usagehttp.ClientTotal, string) {
		var out []usagehttp.ClientTotal
		why := usagePages(t, base, "/usage?limit=2", func(p usagehttp.UsagePage) string {
			// The test's clients and the callers' own address.
			if p.Total != len(want)+1 {
				return fmt.Sprintf("%s: total_clients %d, want %d", base, p.Total, len(want)+1)
			}
			for _, ct := range p.Clients {
				if _, ok := want[ct.Client]; ok {
					out = append(out, usagehttp.ClientTotal{Client: ct.Client, Total: ct.Total})
				}
			}
			return ""
		})
		return out, why
	}
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		fromView, why := list(view.Base)
		if why != "" {
			return false, why
		}
		fromWorkers, why := list(routed)
		if why != "" {
			return false, why
		}
		got := map[string]uint64{}
		for _, ct := range fromWorkers {
			got[ct.Client] = ct.Total
		}
		return reflect.DeepEqual(fromView, fromWorkers) && reflect.DeepEqual(got, want),
			fmt.Sprintf("view %v\nworkers %v\nwant %v", fromView, fromWorkers, want)
	})
}

// GET /usage?service= ranks the clients of one service by their calls to
// it, from the top-clients index in view mode and from the workers' own
// indexes, merged, in workers mode: both list the same clients, calls,
// last calls and order, page by page through the cursor, with the same
// counts; the default service holds the API's own calls, an unknown
// service nobody.
func TestRoutedServiceRankingsEqualViewMode(t *testing.T) {
	view, routed := startViewAndRouted(t)

	// calls[service][client]
	calls := map[string]map[string]uint64{"shop": {}, "billing": {}, "default": {}}
	var items []map[string]any
	now := time.Now().UTC()
	for i := range 9 {
		client := fmt.Sprintf("198.51.100.%d", 40+i)
		for j := range 1 + i%4 {
			svc := []string{"shop", "billing"}[(i+j)%2]
			if i%3 == 0 {
				svc = "shop"
			}
			items = append(items, map[string]any{"client": client, "httpMethod": "GET", "route": "/orders/{id}", "httpStatus": 200,
				"requestTime": now.Add(time.Duration(i*10+j) * time.Millisecond).Format(time.RFC3339Nano), "service": svc})
			calls[svc][client]++
		}
		if i%2 == 0 {
			for range 1 + i%3 {
				view.call(t, "GET", "/healthz", client, "")
				calls["default"][client]++
			}
		}
	}
	view.postEvents(t, items)

	type page struct {
		rows  []usagehttp.ClientTotal
		total int
	}
	// list reads a service's whole ranking, two rows a page; only the
	// test's clients for the default service, which also holds the reads.
	list := func(base, service string) (page, string) {
		var out page
		why := usagePages(t, base, "/usage?limit=2&service="+service, func(p usagehttp.UsagePage) string {
			out.total = p.Total
			for _, ct := range p.Clients {
				if _, ours := calls["default"][ct.Client]; service != "default" || ours {
					out.rows = append(out.rows, ct)
				}
			}
			return ""
		})
		return out, why
	}
	for _, service := range []string{"shop", "billing", "default", "unknown"} {
		testutil.Eventually(t, 30*time.Second, func() (bool, string) {
			fromView, why := list(view.Base, service)
			if why != "" {
				return false, why
			}
			fromWorkers, why := list(routed, service)
			if why != "" {
				return false, why
			}
			got := map[string]uint64{}
			for i, ct := range fromWorkers.rows {
				got[ct.Client] = ct.Total
				if ct.LastSeen == nil || i > 0 && fromWorkers.rows[i-1].Total < ct.Total {
					return false, fmt.Sprintf("service %s: row %d %+v out of order or without its last call", service, i, ct)
				}
			}
			want := calls[service]
			if want == nil {
				want = map[string]uint64{}
			}
			sameTotal := fromView.total == fromWorkers.total && (service == "default" || fromView.total == len(want))
			return reflect.DeepEqual(fromView.rows, fromWorkers.rows) && reflect.DeepEqual(got, want) && sameTotal,
				fmt.Sprintf("service %s:\nview %+v\nworkers %+v\nwant %v", service, fromView, fromWorkers, want)
		})
	}
	// Still a bad request: an empty name.
	for _, base := range []string{view.Base, routed} {
		if code, body := getBody(t, base, "/usage?service="); code != http.StatusBadRequest {
			t.Errorf("%s/usage?service=: %d %s, want 400", base, code, body)
		}
	}
}

// usagePages reads GET base+path and the pages after it, following
// next_cursor, handing each to take, until the last page or until take
// (or a read) says what is wrong.
func usagePages(t *testing.T, base, path string, take func(usagehttp.UsagePage) string) string {
	t.Helper()
	cursor := ""
	for {
		code, body := getBody(t, base, path+cursor)
		if code != http.StatusOK {
			return fmt.Sprintf("%s%s: %d %s", base, path, code, body)
		}
		var p usagehttp.UsagePage
		if err := json.Unmarshal([]byte(body), &p); err != nil {
			t.Fatal(err)
		}
		if why := take(p); why != "" || p.NextCursor == "" {
			return why
		}
		cursor = "&cursor=" + p.NextCursor
	}
}

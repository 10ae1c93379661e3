package dashboard_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/mux"

	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/app"
	"github.com/inarious/inarious/internal/app/apptest"
	"github.com/inarious/inarious/internal/dashboard"
	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/views/viewstest"
)

// chromiumPath is Debian's chromium (scripts/install-chromium.sh installs it).
const chromiumPath = "/usr/bin/chromium"

// TestDashboardInBrowser opens /dashboard in headless Chromium, makes API
// calls from Go and waits for the page to show them without reloading.
//
// Run: go test ./internal/dashboard -run Browser -v
// (INARIOUS_REQUIRE_BROWSER=1 fails instead of skipping without Chromium;
// INARIOUS_SCREENSHOT_DIR keeps the screenshot.)
func TestDashboardInBrowser(t *testing.T) {
	ctx := newBrowser(t)
	base := startSystem(t)

	// The first Run starts the browser, so it gets no timeout of its own.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/dashboard"),
		chromedp.WaitVisible("#status.on"),
		// Survives only if the page is updated in place, never reloaded.
		chromedp.Evaluate[chromedp.Void]("window.__sameDocument = true"),
	); err != nil {
		t.Fatalf("open dashboard: %v", err)
	}

	// waitCount polls the page until client's endpoint shows want.
	waitCount := func(client, endpoint string, want int) {
		t.Helper()
		start := time.Now()
		expr := fmt.Sprintf(`window.__sameDocument && document.querySelector(%s)?.dataset.count === %s`,
			strconv.Quote(fmt.Sprintf(`td[data-client=%q][data-endpoint=%q]`, client, endpoint)),
			strconv.Quote(strconv.Itoa(want)))
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
			t.Fatalf("page never showed %s %q = %d: %v", client, endpoint, want, err)
		}
		t.Logf("page showed %s %q = %d %v after the last request", client, endpoint, want, time.Since(start).Round(time.Millisecond))
	}

	for range 7 {
		call(t, http.MethodGet, base+"/healthz", "")
	}
	waitCount("127.0.0.1", "GET /healthz", 7)

	// A rule the first client below crosses: its alert shows in the panel.
	put, err := http.NewRequest(http.MethodPut, base+"/alerts/rules/dash-alert", strings.NewReader(
		`{"kind":"client_usage","client":"10.0.0.7","window":"1h","limit":10,"thresholds":[100]}`))
	if err != nil {
		t.Fatal(err)
	}
	put.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(put)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT rule = %d", resp.StatusCode)
	}

	// A few rounds from more clients (through the trusted proxy 127.0.0.1),
	// each waited for, so the rate chart and the top clients have something
	// to show in the screenshot.
	clients := []string{"10.0.0.7", "10.0.4.2", "192.168.1.20", "172.16.9.3"}
	counts := map[string]int{}
	for round := range 8 {
		for i, c := range clients {
			n := (round+1)*(len(clients)-i) + i
			for range n {
				call(t, http.MethodGet, base+"/usage", c)
			}
			counts[c] += n
			call(t, http.MethodGet, base+"/usage/"+c, c)
			if i%2 == 0 {
				call(t, http.MethodGet, base+"/no/such/page", c)
			}
		}
		last := clients[len(clients)-1]
		waitCount(last, "GET /usage", counts[last])
	}
	waitCount(clients[0], "GET /usage", counts[clients[0]])
	// The endpoints table, through the aggregator and its group, shows the
	// same calls of GET /usage, all clients together, in both lists, and
	// charts the busiest endpoint's latency.
	usageCalls := 0
	for _, n := range counts {
		usageCalls += n
	}
	for _, list := range []string{"#epByP99", "#epByErrorRate"} {
		expr := fmt.Sprintf(`!document.querySelector("#epSection").hidden && document.querySelector(%s)?.dataset.calls === %s`,
			strconv.Quote(list+` tr[data-endpoint="GET /usage"]`), strconv.Quote(strconv.Itoa(usageCalls)))
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
			t.Fatalf("%s never showed GET /usage with %d calls: %v", list, usageCalls, err)
		}
	}
	// Inarious' own API is the default service, holding at least those calls.
	services := fmt.Sprintf(`Number(document.querySelector('#services tr[data-service="default"]')?.dataset.calls) >= %d`, usageCalls)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](services, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Fatalf("the services list never showed the default service with %d calls or more: %v", usageCalls, err)
	}
	// A service links to its clients, ranked by their calls to it: the
	// busiest client of the default service is the first test client.
	rank := `fetch(document.querySelector('#services tr[data-service="default"] a').href).then((r) => r.json()).then((p) => p.clients[0].client)`
	if first, err := chromedp.Run(ctx, chromedp.Evaluate[string](rank, chromedp.EvalAwaitPromise)); err != nil || first != clients[0] {
		t.Fatalf("the default service's link ranks %q first (%v), want %s", first, err, clients[0])
	}
	alert := `!document.querySelector("#alertSection").hidden && [...document.querySelectorAll("#alerts tr[data-alert]")]` +
		`.some((tr) => tr.cells[0].textContent === "dash-alert" && tr.cells[1].textContent === "10.0.0.7")`
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](alert, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Fatalf("the active alerts never showed 10.0.0.7's alert: %v", err)
	}
	chart := `document.querySelector("#latencyFig").dataset.endpoint === "GET /usage" && Number(document.querySelector("#latencyFig").dataset.points) >= 1`
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](chart, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Fatalf("the latency chart never showed GET /usage: %v", err)
	}

	// The per-client charts: pick a client, and both the last hour by minute
	// and the last day by hour add up to all its calls (they were all made
	// now); more calls show up without a reload.
	picked := clients[1]
	if err := chromedp.Do(ctx,
		chromedp.SetValue("#seriesClient", picked),
		chromedp.Evaluate[chromedp.Void](`document.querySelector("#seriesClient").dispatchEvent(new Event("change"))`),
	); err != nil {
		t.Fatalf("pick %s: %v", picked, err)
	}
	waitSeries := func(want uint64) {
		t.Helper()
		for _, fig := range []string{"#minuteFig", "#hourFig"} {
			expr := fmt.Sprintf(`window.__sameDocument && document.querySelector(%q).dataset.client === %q && document.querySelector(%q).dataset.total === %q`,
				fig, picked, fig, strconv.FormatUint(want, 10))
			if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
				t.Fatalf("%s never showed %d calls of %s: %v", fig, want, picked, err)
			}
		}
	}
	total := uint64(counts[picked] + 8) // its GET /usage calls and one GET /usage/{client} a round
	waitSeries(total)
	for range 5 {
		call(t, http.MethodGet, base+"/healthz", picked)
	}
	waitSeries(total + 5)

	saveScreenshot(t, ctx, "dashboard.png")
}

// newBrowser starts headless Chromium for the test, or skips it when
// Chromium is not installed. The first Run on the context starts the
// browser, so it should get no timeout of its own.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		msg := fmt.Sprintf("browser test needs %s (run scripts/install-chromium.sh): %v", chromiumPath, err)
		if os.Getenv("INARIOUS_REQUIRE_BROWSER") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.Flag("no-default-browser-check", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancel)
	return ctx
}

// saveScreenshot keeps a full-page screenshot in INARIOUS_SCREENSHOT_DIR
// (else a temporary directory) as name.
func saveScreenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := os.Getenv("INARIOUS_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatalf("save screenshot: %v", err)
	}
	t.Logf("screenshot: %s", path)
}

// call makes one request, as client when it is not empty (X-Forwarded-For
// from the trusted local proxy).
func call(t *testing.T, method, url, client string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if client != "" {
		req.Header.Set("X-Forwarded-For", client)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// startSystem runs Inarious in-process on the embedded broker and returns
// the API's base URL once /readyz says ready.
func startSystem(t *testing.T) string {
	t.Helper()
	return apptest.Start(t, nil, func(c *app.Config) { c.Kafka.Partitions = 2 }).Base
}

// TestEndpointPanelsInBrowser serves the hub alone, over a fake endpoints
// table, and checks the page lists the slowest and most failing endpoints
// and charts the busiest one's latency, follows changes without a reload,
// and charts another endpoint once it is clicked.
func TestEndpointPanelsInBrowser(t *testing.T) {
	ctx := newBrowser(t)

	minute := time.Now().UTC().Truncate(time.Minute)
	eps := dashboard.NewFakeEndpoints()
	eps.Set("GET /users", 900, 12, 0.01)
	eps.Set("POST /orders", 300, 250, 0.2)
	eps.Set("GET /search", 500, 480, 0.05)
	eps.Set("DELETE /users/{id}", 20, 35, 0.5)
	eps.SetBucket("GET /users", minute.Add(-5*time.Minute), 400, 4, 20, 40)
	eps.SetBucket("GET /users", minute, 500, 5, 22, 44)
	eps.SetBucket("POST /orders", minute.Add(-3*time.Minute), 300, 50, 200, 260)

	hub := dashboard.NewHub(dashboard.WithLogger(slog.New(slog.DiscardHandler)), dashboard.WithEndpoints(eps))
	runCtx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	go hub.Run(runCtx, viewstest.Rows{"10.0.0.1": {Client: "10.0.0.1", Total: 3,
		Endpoints: map[string]*activitypb.EndpointUsage{"GET /users": {Count: 3}}}})
	router := mux.NewRouter()
	httpx.Mount(router, hub.Routes())
	srv := httptest.NewServer(router)
	t.Cleanup(srv.Close)
	t.Cleanup(hub.Close) // ends the event stream, or srv.Close would wait for it

	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/dashboard"),
		chromedp.WaitVisible("#status.on"),
		chromedp.Evaluate[chromedp.Void]("window.__sameDocument = true"),
	); err != nil {
		t.Fatalf("open dashboard: %v", err)
	}

	// wait polls the page until the JavaScript expression js equals want.
	wait := func(what, js, want string) {
		t.Helper()
		expr := fmt.Sprintf(`window.__sameDocument && (%s) === %s`, js, strconv.Quote(want))
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
			got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](js))
			t.Fatalf("%s: page shows %q, want %q (%v)", what, got, want, err)
		}
	}
	// list is a list's rows as "endpoint=value/calls", one per line.
	list := func(id string) string {
		return fmt.Sprintf(`[...document.querySelectorAll("#%s tr[data-endpoint]")].map((tr) => tr.dataset.endpoint + "=" + tr.dataset.value + "/" + tr.dataset.calls).join("\n")`, id)
	}
	// chart is the latency chart's endpoint, points and newest p99.
	const chart = `(() => { const d = document.querySelector("#latencyFig").dataset; return d.endpoint + " " + d.points + " " + d.p99; })()`
	const pickedRows = `[...document.querySelectorAll("#epSection tr.picked")].map((tr) => tr.dataset.endpoint).join(",")`

	wait("by p99", list("epByP99"), "GET /search=480/500\nPOST /orders=250/300\nDELETE /users/{id}=35/20\nGET /users=12/900")
	wait("by error rate", list("epByErrorRate"), "DELETE /users/{id}=0.5/20\nPOST /orders=0.2/300\nGET /search=0.05/500\nGET /users=0.01/900")
	wait("chart of the busiest endpoint", chart, "GET /users 2 44")
	wait("shown endpoint marked", pickedRows, "GET /users,GET /users")
	wait("chart caption", `document.querySelector("#latencyEndpoint").textContent`, "GET /users")

	// New data reaches the page without a reload.
	eps.Set("GET /export", 50, 900, 0.75)
	eps.SetBucket("GET /users", minute, 600, 6, 30, 77)
	wait("by p99 after GET /export", list("epByP99"), "GET /export=900/50\nGET /search=480/500\nPOST /orders=250/300\nDELETE /users/{id}=35/20\nGET /users=12/900")
	wait("by error rate after GET /export", list("epByErrorRate"), "GET /export=0.75/50\nDELETE /users/{id}=0.5/20\nPOST /orders=0.2/300\nGET /search=0.05/500\nGET /users=0.01/900")
	wait("chart after a new p99", chart, "GET /users 2 77")

	// Clicking another endpoint charts it, and keeps following it.
	if err := chromedp.Do(ctx, chromedp.Click(`#epByErrorRate tr[data-endpoint="POST /orders"]`)); err != nil {
		t.Fatalf("click POST /orders: %v", err)
	}
	wait("chart of the clicked endpoint", chart, "POST /orders 1 260")
	wait("clicked endpoint marked", pickedRows, "POST /orders,POST /orders")
	eps.SetBucket("POST /orders", minute, 100, 60, 240, 310)
	wait("clicked endpoint's chart after a new bucket", chart, "POST /orders 2 310")

	saveScreenshot(t, ctx, "dashboard-endpoints.png")
}

package dashboard_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/inarious/inarious/internal/app"
	"github.com/inarious/inarious/internal/app/apptest"
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
	if _, err := os.Stat(chromiumPath); err != nil {
		msg := fmt.Sprintf("browser test needs %s (run scripts/install-chromium.sh): %v", chromiumPath, err)
		if os.Getenv("INARIOUS_REQUIRE_BROWSER") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	base := startSystem(t)

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
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	defer cancel()

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

	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := os.Getenv("INARIOUS_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, "dashboard.png")
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

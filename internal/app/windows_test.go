package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/app"
	"github.com/inarious/inarious/internal/app/apptest"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/internal/usagehttp"
)

func (s *system) getJSON(t *testing.T, path string, v any) int {
	t.Helper()
	resp, err := http.Get(s.Base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

// Windowed usage end to end, with one-second buckets and no grace so that
// they close while the test runs: calls land in buckets, closed buckets come
// back final from the windowed topic's view, and the window sum matches.
func TestEndToEndWindowedUsage(t *testing.T) {
	s := &system{apptest.Start(t, nil, func(c *app.Config) { c.Windows = "1s:1h,1m:1h"; c.WindowGrace = 0 })}
	const client = "198.51.100.77"
	calls := 0
	call := func() {
		s.call(t, "GET", "/healthz", client, "")
		calls++
	}
	call()
	call()
	// Keep calling until a bucket of the client's closed and is served from
	// the windowed view (each call moves the client's stream time on).
	var series usagehttp.Series
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		call()
		if code := s.getJSON(t, "/usage/"+client+"/series?step=1s&from=-5m", &series); code != http.StatusOK {
			t.Fatalf("series: %d", code)
		}
		for _, b := range series.Buckets {
			if b.Final {
				return true, ""
			}
		}
		return false, fmt.Sprintf("no final 1s bucket among %d", len(series.Buckets))
	})
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		if code := s.getJSON(t, "/usage/"+client+"/series?step=1s&from=-5m", &series); code != http.StatusOK {
			t.Fatalf("series: %d", code)
		}
		var n, ok uint64
		for i, b := range series.Buckets {
			if !b.End.Equal(b.Start.Add(time.Second)) || (i > 0 && !b.Start.After(series.Buckets[i-1].Start)) {
				t.Fatalf("bucket %d: %+v", i, b)
			}
			n += b.Endpoints["GET /healthz"]
			// Final buckets' classes come from the windowed topic, open ones' from the row.
			ok += b.EndpointStatus["GET /healthz"][codecs.Class2xx]
		}
		return n == uint64(calls) && ok == n, fmt.Sprintf("%d of %d calls in the 1s buckets, %d of them 2xx", n, calls, ok)
	})
	var w usagehttp.WindowUsage
	if code := s.getJSON(t, "/usage/"+client+"?window=10m", &w); code != http.StatusOK || w.Endpoints["GET /healthz"].Count != uint64(calls) || w.Window != "10m" ||
		w.Endpoints["GET /healthz"].Status != (codecs.StatusCounts{codecs.Class2xx: uint64(calls)}) || w.Status != w.Endpoints["GET /healthz"].Status {
		t.Errorf("window=10m: %d %+v, want %d calls, all 2xx", code, w, calls)
	}
	var p map[string]any
	if code := s.getJSON(t, "/usage/"+client+"/series?step=1h", &p); code != http.StatusBadRequest {
		t.Errorf("a step not kept: %d", code)
	}
}

func TestWindowFlags(t *testing.T) {
	env := func(string) string { return "" }
	cfg, err := app.Parse("inarious", nil, env)
	if err != nil {
		t.Fatal(err)
	}
	w, err := cfg.WindowConfig()
	if err != nil || len(w.Specs) != 3 || w.Specs[2].Retention != 17520*time.Hour || w.Grace != time.Minute {
		t.Errorf("defaults: %+v %v", w, err)
	}
	cfg, err = app.Parse("inarious", []string{"--windows", "1h:24h", "--window-grace", "5m"}, env)
	if w, _ := cfg.WindowConfig(); err != nil || len(w.Specs) != 1 || w.Specs[0].Step != time.Hour || w.Grace != 5*time.Minute {
		t.Errorf("flags: %+v %v", w, err)
	}
	cfg, err = app.Parse("inarious", nil, func(k string) string {
		return map[string]string{"INARIOUS_WINDOWS": "1d:30d"}[k]
	})
	if w, _ := cfg.WindowConfig(); err != nil || len(w.Specs) != 1 || w.Specs[0].Step != 24*time.Hour {
		t.Errorf("INARIOUS_WINDOWS: %+v %v", w, err)
	}
	for _, bad := range [][]string{{"--windows", "7m:1h"}, {"--windows", "1m"}, {"--window-grace", "-1s"}, {"--windows", "1m:1h", "--window-grace", "2h"}, {"--client-retention", "-1h"}} {
		if _, err := app.Parse("inarious", bad, env); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if cfg, err := app.Parse("inarious", []string{"--windows="}, env); err != nil || cfg.Windows != "" {
		t.Errorf("--windows= (off): %v", err)
	}
}

// A client not seen for --client-retention is deleted by the worker's
// janitor; one that keeps calling stays.
func TestEndToEndIdleClientsExpire(t *testing.T) {
	s := &system{apptest.Start(t, nil, func(c *app.Config) { c.ClientRetention = 2 * time.Second })}
	const idle, busy = "198.51.100.80", "198.51.100.81"
	s.call(t, "GET", "/healthz", idle, "")
	testutil.Eventually(t, 30*time.Second, func() (bool, string) { return s.usage(t, idle) != nil, "the idle client counted" })
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		s.call(t, "GET", "/healthz", busy, "")
		return s.usage(t, idle) == nil, "the idle client expired"
	})
	if u := s.usage(t, busy); u == nil || u.Total == 0 {
		t.Errorf("the busy client was expired too: %+v", u)
	}
}

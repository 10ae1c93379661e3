package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/inarious/inarious/internal/usagehttp"
)

// windowDiff compares each client's minute buckets of the last two hours
// (GET /usage/{client}?window=2h) with its all-time counts: in a run shorter
// than that, with live traffic (no late events), they must agree exactly,
// kill -9s included. "" when they do.
func (tr *traffic) windowDiff(a *apiProc, clients []string) (string, error) {
	var out []string
	for _, c := range clients {
		all, err := tr.usage(a, c)
		if err != nil {
			return "", fmt.Errorf("all-time usage of %s: %w", c, err)
		}
		if all == nil {
			return "", fmt.Errorf("all-time usage of %s: none", c)
		}
		code, body, err := tr.call(a, http.MethodGet, "/usage/"+c+"?window=2h", "", "")
		if err != nil {
			return "", err
		}
		if code != http.StatusOK {
			return "", fmt.Errorf("GET /usage/%s?window=2h: %d %s", c, code, body)
		}
		var w usagehttp.WindowUsage
		if err := json.Unmarshal(body, &w); err != nil {
			return "", err
		}
		if w.Total != all.Total {
			out = append(out, fmt.Sprintf("%s total: window %d, all-time %d", c, w.Total, all.Total))
		}
		for ep, n := range all.Endpoints {
			if w.Endpoints[ep].Count != n.Count {
				out = append(out, fmt.Sprintf("%s %q: window %d, all-time %d", c, ep, w.Endpoints[ep].Count, n.Count))
			}
		}
	}
	sort.Strings(out)
	return strings.Join(out, "; "), nil
}

// waitWindowsExact polls windowDiff until it is "" (the windowed views may
// trail the usage view by a moment).
func (tr *traffic) waitWindowsExact(a *apiProc, clients []string, timeout time.Duration) time.Duration {
	tr.t.Helper()
	t0 := time.Now()
	for {
		d, err := tr.windowDiff(a, clients)
		if err == nil && d == "" {
			return time.Since(t0)
		}
		if err != nil {
			d = err.Error()
		}
		if time.Since(t0) > timeout {
			tr.t.Fatalf("windowed counts differ from all-time counts after %v: %s", timeout, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/internal/usagehttp"
	endpointsgroup "github.com/inarious/inarious/processors/endpoints"
)

// endpointTruth is an endpoint's calls as the usage table counts them,
// summed over every client: what the endpoints table must hold exactly.
type endpointTruth struct {
	calls   uint64
	status  codecs.StatusCounts
	clients int
}

// usageByEndpoint sums the whole usage table by endpoint, for the
// endpoints named (reading the table calls other endpoints of the API).
func (tr *traffic) usageByEndpoint(a *apiProc, names []string) (map[string]*endpointTruth, error) {
	out := map[string]*endpointTruth{}
	for _, n := range names {
		out[n] = &endpointTruth{}
	}
	cursor := ""
	for {
		code, body, err := tr.call(a, http.MethodGet, "/usage?limit=1000&cursor="+url.QueryEscape(cursor), "", "")
		if err != nil {
			return nil, err
		}
		if code != http.StatusOK {
			return nil, fmt.Errorf("GET /usage: %d %s", code, body)
		}
		var page usagehttp.UsagePage
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, err
		}
		for _, c := range page.Clients {
			u, err := tr.usage(a, c.Client)
			if err != nil {
				return nil, fmt.Errorf("usage of %s: %w", c.Client, err)
			}
			if u == nil {
				return nil, fmt.Errorf("usage of %s: listed, then not found", c.Client)
			}
			for name, e := range u.Endpoints {
				if t := out[name]; t != nil {
					t.calls += e.Count
					t.status.Add(e.Status)
					t.clients++
				}
			}
		}
		if page.NextCursor == "" {
			return out, nil
		}
		cursor = page.NextCursor
	}
}

// endpointsDiff compares GET /endpoints/{endpoint} with the usage table's
// sums: calls and classes exactly; every call with a status has one
// duration in the latency sketch (none applied twice or missed); distinct
// clients exactly, as HyperLogLog is for a few clients.
func (tr *traffic) endpointsDiff(a *apiProc, truth map[string]*endpointTruth) (string, error) {
	var diffs []string
	for name, want := range truth {
		code, body, err := tr.call(a, http.MethodGet, "/endpoints/"+url.PathEscape(name), "", "")
		if err != nil {
			return "", err
		}
		var got endpointsgroup.Summary
		switch {
		case code == http.StatusNotFound && want.calls == 0:
			continue
		case code != http.StatusOK:
			diffs = append(diffs, fmt.Sprintf("%s: %d %s", name, code, body))
			continue
		}
		if err := json.Unmarshal(body, &got); err != nil {
			return "", err
		}
		var timed uint64
		for _, n := range want.status {
			timed += n
		}
		if got.Calls != want.calls || got.Status != want.status || got.Latency.Timed != timed || got.DistinctClients != uint64(want.clients) {
			diffs = append(diffs, fmt.Sprintf("%s: calls %d/%d, classes %v/%v, timed %d/%d, clients %d/%d (endpoints/usage)",
				name, got.Calls, want.calls, got.Status, want.status, got.Latency.Timed, timed, got.DistinctClients, want.clients))
		}
	}
	slices.Sort(diffs)
	return strings.Join(diffs, "; "), nil
}

// waitEndpointsExact waits until the endpoints table agrees with the usage
// table (itself checked exact against what was sent) for names, and says
// how long that took.
func (tr *traffic) waitEndpointsExact(a *apiProc, names []string, timeout time.Duration) time.Duration {
	tr.t.Helper()
	truth, err := tr.usageByEndpoint(a, names)
	if err != nil {
		tr.t.Fatal(err)
	}
	return testutil.EventuallyEvery(tr.t, timeout, 100*time.Millisecond, func() (bool, string) {
		diff, err := tr.endpointsDiff(a, truth)
		if err != nil {
			return false, err.Error()
		}
		return diff == "", diff
	})
}

// simulatedEndpoints are the endpoints only the simulated clients and the
// original producer call ("GET /users", from its full URLs).
func simulatedEndpoints() []string {
	names := []string{"GET /users"}
	for _, e := range endpoints {
		names = append(names, e.key)
	}
	return names
}

package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/app"
	"github.com/inarious/inarious/internal/app/apptest"
	"github.com/inarious/inarious/internal/kafka/kafkatest"
	"github.com/inarious/inarious/internal/quotas/quotahttp"
	"github.com/inarious/inarious/internal/testutil"
)

// quotaCall is one call's answer: status, body and header.
type quotaCall struct {
	status int
	body   string
	header http.Header
}

// callAs sends a call to url as client (X-Forwarded-For, 127.0.0.1 being a
// trusted proxy in tests) with a JSON body, if any.
func callAs(t *testing.T, method, url, client, body string) quotaCall {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if client != "" {
		req.Header.Set("X-Forwarded-For", client)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return quotaCall{resp.StatusCode, string(b), resp.Header}
}

// checkOf is GET /quotas/{client}/check?reserve=false on base.
func checkOf(t *testing.T, base, client string) quotahttp.Check {
	t.Helper()
	c := callAs(t, "GET", base+"/quotas/"+client+"/check?reserve=false", "", "")
	var out quotahttp.Check
	if err := json.Unmarshal([]byte(c.body), &out); err != nil || c.status != http.StatusOK {
		t.Fatalf("check %s = %d %s (%v)", client, c.status, c.body, err)
	}
	return out
}

// Two API replicas on one broker: a policy written through either is
// enforced by both without a restart, and a client's calls through one
// count against its quota on the other (the usage table is shared).
func TestQuotasTwoReplicasAgree(t *testing.T) {
	kc := kafkatest.Config(t, 4)
	opts := func(c *app.Config) {
		c.Brokers, c.Kafka.Brokers = strings.Join(kc.Brokers, ","), kc.Brokers
		c.Quotas, c.QuotaRefresh = true, 20*time.Millisecond
	}
	a := apptest.Start(t, nil, opts)
	cfgB := a.Config
	b := startAPI(t, cfgB, "replica B")
	const client = "198.51.100.26"

	// A policy written through A: B enforces it.
	if c := callAs(t, "PUT", a.Base+"/quotas/"+client, "", `{"limits":[{"window":"1d","limit":3}]}`); c.status != http.StatusCreated {
		t.Fatalf("PUT on A = %d %s", c.status, c.body)
	}
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		c := checkOf(t, b, client)
		return c.Policy == client && len(c.Limits) == 1 && c.Limits[0].Limit.Limit == 3, fmt.Sprintf("B's check: %+v", c)
	})

	// Calls through A: allowed ones carry what remains, the fourth is refused.
	for i, want := range []string{`"1d";r=2;t=`, `"1d";r=1;t=`, `"1d";r=0;t=`} {
		c := callAs(t, "GET", a.Base+"/", client, "")
		if c.status != http.StatusOK || !strings.HasPrefix(c.header.Get("RateLimit"), want) || c.header.Get("RateLimit-Policy") != `"1d";q=3;w=86400` {
			t.Fatalf("call %d on A = %d, RateLimit %q, RateLimit-Policy %q; want 200, %s…", i+1, c.status, c.header.Get("RateLimit"), c.header.Get("RateLimit-Policy"), want)
		}
	}
	over := callAs(t, "GET", a.Base+"/", client, "")
	if over.status != http.StatusTooManyRequests || over.header.Get("Retry-After") == "" || !strings.HasPrefix(over.header.Get("RateLimit"), `"1d";r=0;t=`) ||
		!strings.Contains(over.body, "over the quota of 3 calls per 1d") {
		t.Fatalf("fourth call on A = %d %v %s; want 429 with Retry-After and r=0", over.status, over.header, over.body)
	}
	// B knows of A's calls only through the usage table.
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		c := callAs(t, "GET", b+"/", client, "")
		return c.status == http.StatusTooManyRequests, fmt.Sprintf("B answers %d to the client over its quota", c.status)
	})
	// Probes are exempt by default.
	if c := callAs(t, "GET", a.Base+"/healthz", client, ""); c.status != http.StatusOK || c.header.Get("RateLimit") != "" {
		t.Errorf("/healthz of a client over its quota = %d %v", c.status, c.header)
	}

	// A change through B raises the limit on A; a delete through A lifts it on B.
	if c := callAs(t, "PUT", b+"/quotas/"+client, "", `{"limits":[{"window":"1d","limit":1000}]}`); c.status != http.StatusOK {
		t.Fatalf("PUT on B = %d %s", c.status, c.body)
	}
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		c := callAs(t, "GET", a.Base+"/", client, "")
		return c.status == http.StatusOK, fmt.Sprintf("A answers %d after the limit was raised on B", c.status)
	})
	if c := callAs(t, "DELETE", a.Base+"/quotas/"+client, "", ""); c.status != http.StatusNoContent {
		t.Fatalf("DELETE on A = %d %s", c.status, c.body)
	}
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		c := checkOf(t, b, client)
		return c.Policy == "" && len(c.Limits) == 0, fmt.Sprintf("B's check after the delete: %+v", c)
	})
	if c := callAs(t, "GET", b+"/", client, ""); c.status != http.StatusOK || c.header.Get("RateLimit") != "" {
		t.Errorf("B after the delete = %d, RateLimit %q; want 200 without", c.status, c.header.Get("RateLimit"))
	}
	// Every replica lists the same policies.
	if ca, cb := callAs(t, "GET", a.Base+"/quotas", "", ""), callAs(t, "GET", b+"/quotas", "", ""); ca.body != `{"quotas":[]}`+"\n" || cb.body != ca.body {
		t.Errorf("lists: A %s, B %s; want both empty", ca.body, cb.body)
	}
}

package app_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/app"
	"github.com/inarious/inarious/internal/app/apptest"
	"github.com/inarious/inarious/internal/endpointshttp"
	"github.com/inarious/inarious/internal/kafka/kafkatest"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/views"
)

// In --usage-source=workers mode the endpoints reads answer what view mode
// answers: one endpoint (URL-escaped), ?window=, /series, and GET
// /endpoints in every order, paged by cursor. A worker with --query-listen
// and a view-mode API run in one process; a workers-mode API beside them
// asks the worker. The reads are API calls too (counted under "GET
// /endpoints…"), so lists are compared until both modes saw the same flush.
func TestRoutedEndpointsEqualViewMode(t *testing.T) {
	kc := kafkatest.Config(t, 4)
	view := &system{apptest.Start(t, nil, func(c *app.Config) {
		c.Brokers, c.Kafka.Brokers = strings.Join(kc.Brokers, ","), kc.Brokers
		c.QueryListen = "127.0.0.1:0"
		c.Windows, c.WindowGrace = "1s:1h,1m:1h", 0
	})}
	routed := startRoutedAPI(t, view.Config)

	began := time.Now().UTC().Truncate(time.Second)
	const healthz, users = "GET /healthz", "POST /users"
	for range 6 {
		view.call(t, "GET", "/healthz", "198.51.100.1", "")
	}
	for range 3 {
		view.call(t, "POST", "/users", "198.51.100.2", "{")
	}
	one := func(base, endpoint, query string) (int, string) {
		return getBody(t, base, "/endpoints/"+url.PathEscape(endpoint)+query)
	}
	// One endpoint, all-time: the calls made, equal in both modes.
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		for ep, calls := range map[string]uint64{healthz: 6, users: 3} {
			cv, bv := one(view.Base, ep, "")
			cw, bw := one(routed, ep, "")
			var sv, sw struct {
				Calls  uint64              `json:"calls"`
				Status codecs.StatusCounts `json:"status"`
			}
			_ = json.Unmarshal([]byte(bv), &sv)
			_ = json.Unmarshal([]byte(bw), &sw)
			if cv != http.StatusOK || cw != http.StatusOK || bv != bw || sw.Calls != calls {
				return false, fmt.Sprintf("%s: view %d %s\nworkers %d %s\nwant %d calls", ep, cv, bv, cw, bw, calls)
			}
			if ep == users && sw.Status[codecs.Class4xx] != 3 {
				return false, fmt.Sprintf("%s: status %v, want three 4xx", ep, sw.Status)
			}
		}
		return true, ""
	})
	if !strings.Contains(url.PathEscape(healthz), "%2F") {
		t.Fatalf("the endpoint is not escaped as the routes expect: %s", url.PathEscape(healthz))
	}
	if cv, cw := getStatus(t, view.Base, "/endpoints/GET%20%2Fnever"), getStatus(t, routed, "/endpoints/GET%20%2Fnever"); cv != http.StatusNotFound || cw != cv {
		t.Errorf("an endpoint never called: view %d, workers %d; want 404", cv, cw)
	}

	// Windowed: a fixed span of 1 s buckets, and the last 10 minutes.
	q := url.Values{"step": {"1s"}, "from": {began.Add(-time.Minute).Format(time.RFC3339)}, "to": {time.Now().Add(time.Minute).UTC().Format(time.RFC3339)}}
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		cv, bv := one(view.Base, healthz, "/series?"+q.Encode())
		cw, bw := one(routed, healthz, "/series?"+q.Encode())
		var s endpointshttp.Series
		_ = json.Unmarshal([]byte(bw), &s)
		var n uint64
		for _, b := range s.Buckets {
			n += b.Summary.Calls
		}
		if cv != http.StatusOK || cw != http.StatusOK || bv != bw || n != 6 {
			return false, fmt.Sprintf("series: %d calls in the workers' buckets, want 6, or the modes differ:\nview %d %s\nworkers %d %s", n, cv, bv, cw, bw)
		}
		cv, bv = one(view.Base, healthz, "?window=10m")
		cw, bw = one(routed, healthz, "?window=10m")
		var ws endpointshttp.WindowSummary
		_ = json.Unmarshal([]byte(bw), &ws)
		if cv != http.StatusOK || cw != http.StatusOK || ws.Calls != 6 || !sameWindow(bv, bw) {
			return false, fmt.Sprintf("window: view %d %s\nworkers %d %s\nwant 6 calls", cv, bv, cw, bw)
		}
		return true, ""
	})
	for _, bad := range []string{"/series?step=1h", "?window=2h", "/series?step=1s&from=-1m&to=-2m"} {
		cv, bv := one(view.Base, healthz, bad)
		cw, bw := one(routed, healthz, bad)
		if cv != http.StatusBadRequest || cw != cv || problemDetail(bv) != problemDetail(bw) {
			t.Errorf("%s: view %d %s, workers %d %s; want the same 400", bad, cv, bv, cw, bw)
		}
	}

	// Lists: every order, pages of two through the cursor.
	list := func(base string, order views.EndpointOrder) ([]string, int, string) {
		var out []string
		total, cursor := -1, ""
		for range 100 {
			code, body := getBody(t, base, "/endpoints?limit=2&order="+string(order)+cursor)
			if code != http.StatusOK {
				return nil, 0, fmt.Sprintf("%s: %d %s", base, code, body)
			}
			var p endpointshttp.EndpointPage
			if err := json.Unmarshal([]byte(body), &p); err != nil {
				t.Fatal(err)
			}
			if total >= 0 && p.Total != total {
				return nil, 0, "the table changed while paging"
			}
			total = p.Total
			for _, s := range p.Endpoints {
				out = append(out, fmt.Sprintf("%s %v", s.Endpoint, order.Value(s)))
			}
			if p.NextCursor == "" {
				return out, total, ""
			}
			cursor = "&cursor=" + url.QueryEscape(p.NextCursor)
		}
		return nil, 0, "more than 100 pages"
	}
	for _, order := range views.Orders {
		testutil.Eventually(t, 30*time.Second, func() (bool, string) {
			fromView, nv, why := list(view.Base, order)
			if why != "" {
				return false, why
			}
			fromWorkers, nw, why := list(routed, order)
			if why != "" {
				return false, why
			}
			if order == views.ByCalls && !containsAll(fromWorkers, healthz+" 6", users+" 3") {
				return false, fmt.Sprintf("%s: workers list %v without the calls made", order, fromWorkers)
			}
			return nv == nw && len(fromWorkers) == nw && reflect.DeepEqual(fromView, fromWorkers),
				fmt.Sprintf("%s: view (%d) %v\nworkers (%d) %v", order, nv, fromView, nw, fromWorkers)
		})
	}
}

func getStatus(t *testing.T, base, path string) int {
	t.Helper()
	code, _ := getBody(t, base, path)
	return code
}

// sameWindow compares two ?window= answers but for their end ("now" when
// each was answered).
func sameWindow(a, b string) bool {
	var wa, wb endpointshttp.WindowSummary
	if json.Unmarshal([]byte(a), &wa) != nil || json.Unmarshal([]byte(b), &wb) != nil {
		return false
	}
	wa.To, wb.To = time.Time{}, time.Time{}
	return reflect.DeepEqual(wa, wb)
}

func problemDetail(body string) any {
	var p map[string]any
	_ = json.Unmarshal([]byte(body), &p)
	return p["detail"]
}

func containsAll(list []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, s := range list {
			found = found || s == w
		}
		if !found {
			return false
		}
	}
	return true
}

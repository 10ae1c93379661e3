package dashboard

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/windows"
)

const chartRoute = "/dashboard/endpoints/series"

// panelOf decodes the endpoint panel of a snapshot; nil when it has none.
func panelOf(t *testing.T, msg []byte) *EndpointsPanel {
	t.Helper()
	s := decode(t, msg)
	if s.Endpoints == nil {
		return nil
	}
	var p EndpointsPanel
	if err := json.Unmarshal(s.Endpoints, &p); err != nil {
		t.Fatalf("endpoints %s: %v", s.Endpoints, err)
	}
	return &p
}

func names(rows []EndpointRow) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.Endpoint
	}
	return out
}

// endpointsHub is a hub over a small usage table and eps, with a subscriber,
// past its first tick (which learns the table has recovered).
func endpointsHub(t *testing.T, eps *fakeEndpoints, now time.Time) (*Hub, *fakeTable, <-chan []byte) {
	t.Helper()
	h := NewHub(WithLogger(quiet), WithEndpoints(eps))
	tbl := newFakeTable()
	tbl.hit("a", "GET /x", 1)
	h.src = tbl
	h.tick(now, time.Time{})
	ch, cancel := h.Subscribe()
	t.Cleanup(cancel)
	return h, tbl, ch
}

// next ticks at now and returns the snapshot sent.
func next(t *testing.T, h *Hub, ch <-chan []byte, now time.Time) *EndpointsPanel {
	t.Helper()
	if !h.tick(now, time.Time{}) {
		t.Fatalf("tick at %v sent nothing", now)
	}
	return panelOf(t, <-ch)
}

func TestEndpointPanels(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 30, 20, 0, time.UTC)
	eps := newFakeEndpoints()
	for i := range 12 {
		// p99 rises with i, error rate falls with it; ep03 and ep04 tie on
		// p99 (the name breaks it), ep00 is the busiest.
		p99 := float64(10 * i)
		if i == 4 {
			p99 = 30
		}
		eps.Set(fmt.Sprintf("GET /ep%02d", i), uint64(1000-i), p99, float64(12-i)/100)
	}
	busiest := "GET /ep00"
	eps.SetBucket(busiest, now.Truncate(time.Minute).Add(-45*time.Minute), 9, 1, 2, 3) // older than the chart
	eps.SetBucket(busiest, now.Truncate(time.Minute).Add(-20*time.Minute), 5, 10, 20, 40)
	eps.SetBucket(busiest, now.Truncate(time.Minute), 7, 11, 22, 44)
	eps.SetBucket("GET /ep05", now.Truncate(time.Minute), 1, 100, 200, 400)

	h, _, ch := endpointsHub(t, eps, now)
	p := next(t, h, ch, now)
	if p == nil {
		t.Fatal("snapshot without endpoint panels")
	}
	wantP99 := []string{"GET /ep11", "GET /ep10", "GET /ep09", "GET /ep08", "GET /ep07", "GET /ep06", "GET /ep05", "GET /ep03", "GET /ep04", "GET /ep02"}
	if got := names(p.ByP99); !slices.Equal(got, wantP99) {
		t.Errorf("by p99 = %v, want %v", got, wantP99)
	}
	if r := p.ByP99[0]; r.P99 != 110 || r.Calls != 989 || r.ErrorRate != 0.01 {
		t.Errorf("first by p99 = %+v, want p99 110, 989 calls, error rate 0.01", r)
	}
	wantErr := []string{"GET /ep00", "GET /ep01", "GET /ep02", "GET /ep03", "GET /ep04", "GET /ep05", "GET /ep06", "GET /ep07", "GET /ep08", "GET /ep09"}
	if got := names(p.ByErrorRate); !slices.Equal(got, wantErr) {
		t.Errorf("by error rate = %v, want %v", got, wantErr)
	}
	if p.Endpoints != 12 || p.Busiest != busiest || !p.Windowed {
		t.Errorf("endpoints %d busiest %q windowed %v, want 12 %q true", p.Endpoints, p.Busiest, p.Windowed, busiest)
	}
	c := p.Chart
	if c == nil {
		t.Fatal("no chart of the busiest endpoint")
	}
	// 30 minute buckets, the newest holding now.
	if c.Endpoint != busiest || c.StepMs != 60000 || c.Buckets != 30 || !c.From.Equal(time.Date(2025, 6, 1, 12, 1, 0, 0, time.UTC)) {
		t.Errorf("chart of %q, step %d ms, %d buckets from %v; want %q, 60000, 30 from 12:01", c.Endpoint, c.StepMs, c.Buckets, c.From, busiest)
	}
	want := []LatencyPoint{
		{Start: now.Truncate(time.Minute).Add(-20 * time.Minute), Calls: 5, P50: 10, P95: 20, P99: 40},
		{Start: now.Truncate(time.Minute), Calls: 7, P50: 11, P95: 22, P99: 44},
	}
	if !slices.EqualFunc(c.Points, want, func(a, b LatencyPoint) bool { a.Start, b.Start = a.Start.UTC(), b.Start.UTC(); return a == b }) {
		t.Errorf("points = %+v, want %+v", c.Points, want)
	}
}

func TestEndpointPanelsHiddenWithoutReader(t *testing.T) {
	h := NewHub(WithLogger(quiet))
	tbl := newFakeTable()
	tbl.hit("a", "GET /x", 1)
	h.src = tbl
	ch, cancel := h.Subscribe()
	defer cancel()
	if !h.tick(time.Now(), time.Time{}) {
		t.Fatal("nothing sent")
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(<-ch, &top); err != nil {
		t.Fatal(err)
	}
	if e, ok := top["endpoints"]; ok {
		t.Errorf("snapshot without WithEndpoints has endpoints: %s", e)
	}
	hasRoute := func(h *Hub) bool {
		return slices.ContainsFunc(h.Routes(), func(r httpx.Route) bool { return r.Path == chartRoute })
	}
	if hasRoute(h) {
		t.Errorf("%s routed without WithEndpoints", chartRoute)
	}
	if !hasRoute(NewHub(WithEndpoints(newFakeEndpoints()))) {
		t.Errorf("%s not routed with WithEndpoints", chartRoute)
	}
}

// The lists and the busiest endpoint's chart are read once per
// endpointsEvery, whatever the number of subscribers and ticks, and not at
// all without subscribers.
func TestEndpointReadsOncePerRefresh(t *testing.T) {
	now := time.Now()
	eps := newFakeEndpoints()
	eps.Set("GET /a", 3, 10, 0)
	h, tbl, ch := endpointsHub(t, eps, now)
	for range 2 {
		_, cancel := h.Subscribe()
		defer cancel()
	}
	for i := range 16 { // 4 s of ticks
		tbl.hit("a", "GET /x", 1)
		h.tick(now.Add(time.Duration(i)*h.interval), time.Time{})
	}
	<-ch
	if lists, series := eps.lists.Load(), eps.series.Load(); lists != 3*4 || series != 4 {
		t.Errorf("4 s of ticks with 3 subscribers read %d lists and %d series, want 12 and 4", lists, series)
	}

	h2 := NewHub(WithLogger(quiet), WithEndpoints(eps))
	h2.src = tbl
	before := eps.lists.Load()
	for i := range 8 {
		h2.tick(now.Add(time.Duration(i)*time.Second), time.Time{})
	}
	if n := eps.lists.Load() - before; n != 0 {
		t.Errorf("a hub without subscribers read the endpoint lists %d times", n)
	}
}

// Changes of the endpoints alone (no new usage) reach the page at the next
// refresh; a failed read keeps the last panel.
func TestEndpointPanelsFollowChanges(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 30, 20, 0, time.UTC)
	minute := now.Truncate(time.Minute)
	eps := newFakeEndpoints()
	eps.Set("GET /a", 10, 5, 0.1)
	eps.Set("GET /b", 5, 50, 0)
	eps.SetBucket("GET /a", minute, 10, 1, 4, 5)
	h, _, ch := endpointsHub(t, eps, now)
	if p := next(t, h, ch, now); names(p.ByP99)[0] != "GET /b" || len(p.Chart.Points) != 1 {
		t.Fatalf("first panel: by p99 %v, %d points", names(p.ByP99), len(p.Chart.Points))
	}

	eps.Set("GET /c", 1, 500, 0.9)
	eps.SetBucket("GET /a", minute.Add(time.Minute), 4, 2, 8, 90)
	now = now.Add(time.Minute)
	p := next(t, h, ch, now)
	if got := names(p.ByP99); !slices.Equal(got, []string{"GET /c", "GET /b", "GET /a"}) {
		t.Errorf("by p99 after GET /c = %v", got)
	}
	if got := names(p.ByErrorRate); got[0] != "GET /c" {
		t.Errorf("by error rate after GET /c = %v", got)
	}
	if pts := p.Chart.Points; len(pts) != 2 || pts[1].P99 != 90 {
		t.Errorf("chart after a new bucket = %+v, want 2 points, the last of p99 90", pts)
	}

	eps.setErr(errors.New("rebalancing"))
	now = now.Add(2 * idleEvery)
	if p2 := next(t, h, ch, now); p2 == nil || p2.Busiest != "GET /a" || len(p2.ByP99) != 3 {
		t.Errorf("panel while reads fail = %+v, want the last one", p2)
	}
	eps.setErr(nil)
	eps.Set("GET /d", 100, 1, 0)
	now = now.Add(2 * idleEvery)
	if p := next(t, h, ch, now); p.Busiest != "GET /d" || p.Chart.Endpoint != "GET /d" || len(p.Chart.Points) != 0 {
		t.Errorf("after recovery: busiest %q, chart of %q with %d points; want GET /d, no points", p.Busiest, p.Chart.Endpoint, len(p.Chart.Points))
	}
}

func TestEndpointChartRoute(t *testing.T) {
	now := time.Now()
	eps := newFakeEndpoints()
	eps.Set("GET /busy", 100, 5, 0)
	eps.Set("GET /slow x", 1, 500, 0)
	eps.SetBucket("GET /slow x", now.Truncate(time.Minute), 1, 100, 300, 500)
	h := NewHub(WithLogger(quiet), WithEndpoints(eps))
	i := slices.IndexFunc(h.Routes(), func(r httpx.Route) bool { return r.Path == chartRoute })
	if i < 0 {
		t.Fatal("no chart route")
	}
	route := h.Routes()[i].Handler
	get := func(query string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		route.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, chartRoute+query, nil))
		return rec
	}

	for range 3 {
		rec := get("?endpoint=" + url.QueryEscape("GET /slow x"))
		if rec.Code != http.StatusOK {
			t.Fatalf("chart = %d %s", rec.Code, rec.Body)
		}
		var c LatencyChart
		if err := json.Unmarshal(rec.Body.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		if c.Endpoint != "GET /slow x" || c.Buckets != 30 || len(c.Points) != 1 || c.Points[0].P95 != 300 || c.Points[0].P99 != 500 {
			t.Fatalf("chart = %+v", c)
		}
	}
	if n := eps.series.Load(); n != 1 {
		t.Errorf("3 requests within %v read the series %d times, want once", endpointsEvery, n)
	}
	if rec := get(""); rec.Code != http.StatusBadRequest {
		t.Errorf("without endpoint = %d, want 400", rec.Code)
	}
	eps.win = windows.Config{}
	if rec := get("?endpoint=other"); rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "windowed") {
		t.Errorf("windows off = %d %s, want 404 saying why", rec.Code, rec.Body)
	}
	eps.win = windows.Default()
	eps.setErr(errors.New("no owner"))
	if rec := get("?endpoint=other"); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("failed read = %d, want 503", rec.Code)
	}
}

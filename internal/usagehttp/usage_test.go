package usagehttp_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/top"
	"github.com/inarious/inarious/internal/usagehttp"
)

// liveUsage is a usage table whose counts change between requests, read
// through a real index.
type liveUsage struct {
	fakeUsage // no windows
	top       *top.Index
	mu        sync.Mutex
	totals    map[string]uint64
	recovered bool
}

func newLiveUsage() *liveUsage {
	return &liveUsage{top: top.New(), totals: map[string]uint64{}, recovered: true}
}

func (l *liveUsage) set(client string, total uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.totals[client] = total
	l.top.Set(int32(len(client)%4), client, top.Usage{Total: total})
}

func (l *liveUsage) Get(c string) (*activitypb.ClientUsage, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.totals[c]; ok {
		return &activitypb.ClientUsage{Client: c, Total: t}, nil
	}
	return nil, nil
}

func (l *liveUsage) Top(r top.Ranking, after *top.Key, limit int) (top.Page, error) {
	return l.top.Top(r, after, limit), nil
}
func (l *liveUsage) Recovered() bool { return l.recovered }

// TestListUsageCursorSurvivesChangingCounts pages through clients while
// other clients' counts change between pages: every client whose count did
// not change must be listed exactly once, in order.
func TestListUsageCursorSurvivesChangingCounts(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		usage := newLiveUsage()
		const n = 300
		for i := range n {
			usage.set(fmt.Sprintf("c%03d", i), uint64(rng.IntN(40)))
		}
		srv := serve(t, usage)

		changed := map[string]bool{}
		seen := map[string]int{}
		var listed []usagehttp.ClientTotal
		path := fmt.Sprintf("/usage?limit=%d", 1+rng.IntN(20))
		for pages := 0; path != ""; pages++ {
			if pages > n {
				t.Fatal("pagination does not end")
			}
			page := getPage(t, srv, path)
			listed = append(listed, page.Clients...)
			for _, c := range page.Clients {
				seen[c.Client]++
			}
			// Counts move up and down, across the cursor in both directions.
			for range rng.IntN(6) {
				c := fmt.Sprintf("c%03d", rng.IntN(n))
				changed[c] = true
				usage.set(c, uint64(rng.IntN(40)))
			}
			path = ""
			if page.NextCursor != "" {
				path = fmt.Sprintf("/usage?limit=%d&cursor=%s", 1+rng.IntN(20), page.NextCursor)
			}
		}
		for i := range n {
			c := fmt.Sprintf("c%03d", i)
			if !changed[c] && seen[c] != 1 {
				t.Fatalf("seed %d: unchanged client %s listed %d times", seed, c, seen[c])
			}
		}
		// Unchanged rows come in index order.
		var prev *usagehttp.ClientTotal
		for i := range listed {
			r := &listed[i]
			if changed[r.Client] {
				continue
			}
			if prev != nil && !(top.Key{Total: prev.Total, Client: prev.Client}).Before(top.Key{Total: r.Total, Client: r.Client}) {
				t.Fatalf("seed %d: %+v listed before %+v", seed, *prev, *r)
			}
			prev = r
		}
	}
}

func TestCursorRoundTripAndRejects(t *testing.T) {
	for _, k := range []top.Key{{Total: 0, Client: "a"}, {Total: 1<<64 - 1, Client: "ünïcode/x?y"}, {Total: 300, Client: strings.Repeat("c", 256)}} {
		c := usagehttp.EncodeCursor(k)
		got, err := usagehttp.DecodeCursor(c)
		if err != nil || got != k {
			t.Errorf("round trip of %+v: %+v, %v", k, got, err)
		}
		if strings.ContainsAny(c, "+/=") {
			t.Errorf("cursor %q is not URL-safe", c)
		}
	}
	for _, bad := range []string{"", "!!", "AA", "AQ", "AgFh", usagehttp.EncodeCursor(top.Key{Total: 1}),
		usagehttp.EncodeCursor(top.Key{Total: 1, Client: "\xff"}), usagehttp.EncodeCursor(top.Key{Total: 1, Client: strings.Repeat("c", 257)})} {
		if k, err := usagehttp.DecodeCursor(bad); err == nil {
			t.Errorf("DecodeCursor(%q) = %+v, want an error", bad, k)
		}
	}
}

func TestListUsageUnavailableBeforeRecovery(t *testing.T) {
	usage := newLiveUsage()
	usage.set("a", 1)
	usage.recovered = false
	srv := serve(t, usage)
	if rec := do(srv, "GET", "/usage", "127.0.0.1:1", nil); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("GET /usage while recovering = %d, want 503", rec.Code)
	}
}

// TestListUsageCostDoesNotGrowWithClients: a page's allocations depend on
// its size, not on how many clients the table has.
func TestListUsageCostDoesNotGrowWithClients(t *testing.T) {
	allocs := func(n int) float64 {
		usage := newLiveUsage()
		for i := range n {
			usage.set(fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff), uint64(i%97))
		}
		srv := serve(t, usage)
		page := getPage(t, srv, "/usage?limit=50")
		path := "/usage?limit=50&cursor=" + page.NextCursor
		return testing.AllocsPerRun(20, func() { do(srv, "GET", path, "127.0.0.1:1", nil) })
	}
	small, large := allocs(1000), allocs(100_000)
	t.Logf("allocations per GET /usage?limit=50: %.0f at 1,000 clients, %.0f at 100,000", small, large)
	if large > small*1.2+5 {
		t.Errorf("allocations grow with the table: %.0f at 1,000 clients, %.0f at 100,000", small, large)
	}
}

func TestListUsagePagesAreOrderedAcrossShards(t *testing.T) {
	usage := newLiveUsage()
	rng := rand.New(rand.NewPCG(3, 4))
	var want []top.Key
	for i := range 500 {
		c := fmt.Sprintf("client-%d", i)
		total := uint64(rng.IntN(10))
		usage.set(c, total)
		want = append(want, top.Key{Total: total, Client: c})
	}
	slices.SortFunc(want, func(a, b top.Key) int {
		if a.Before(b) {
			return -1
		}
		return 1
	})
	srv := serve(t, usage)
	var got []top.Key
	for path := "/usage?limit=33"; path != ""; {
		page := getPage(t, srv, path)
		for _, c := range page.Clients {
			got = append(got, top.Key{Total: c.Total, Client: c.Client})
		}
		path = ""
		if page.NextCursor != "" {
			path = "/usage?limit=33&cursor=" + page.NextCursor
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages list %d rows, want %d in index order", len(got), len(want))
	}
}

func TestGetUsage(t *testing.T) {
	usage := fakeUsage{"10.0.0.1": {
		Client: "10.0.0.1", Total: 3,
		Endpoints: map[string]*activitypb.EndpointUsage{"GET /users/{id}": {Count: 2}, "POST /users": {Count: 1}},
	}}
	srv := serve(t, usage)

	rec := do(srv, "GET", "/usage/10.0.0.1", "127.0.0.1:1", nil)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var got usagehttp.ClientUsage
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Client != "10.0.0.1" || got.Total != 3 || got.Endpoints["GET /users/{id}"].Count != 2 || got.Endpoints["POST /users"].Count != 1 {
		t.Errorf("body %+v", got)
	}

	rec = do(srv, "GET", "/usage/unknown", "127.0.0.1:1", nil)
	if rec.Code != 404 || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("unknown client: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	rec = do(srv, "GET", "/usage/%ff%fe", "127.0.0.1:1", nil)
	if rec.Code != 400 {
		t.Errorf("invalid UTF-8 client: %d, want 400", rec.Code)
	}
}

func TestListUsageSortsAndPaginates(t *testing.T) {
	usage := fakeUsage{}
	for i, total := range []uint64{5, 9, 1, 9, 3} {
		c := string(rune('a' + i))
		usage[c] = &activitypb.ClientUsage{Client: c, Total: total}
	}
	srv := serve(t, usage)
	var clients []string
	path := "/usage?limit=2"
	for pages := 0; path != ""; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		page := getPage(t, srv, path)
		if page.Total != 5 || len(page.Clients) > 2 {
			t.Fatalf("page %+v", page)
		}
		for _, c := range page.Clients {
			clients = append(clients, c.Client)
		}
		path = ""
		if page.NextCursor != "" {
			path = "/usage?limit=2&cursor=" + page.NextCursor
		}
	}
	want := []string{"b", "d", "a", "e", "c"} // by total desc, then name
	if !slices.Equal(clients, want) {
		t.Fatalf("clients %v, want %v", clients, want)
	}
	for _, bad := range []string{"limit=0", "limit=-1", "limit=x", "limit=1001", "limit=5000", "offset=2",
		"cursor=%21%21", "cursor=AA", "cursor=" + usagehttp.EncodeCursor(top.Key{Total: 1})} {
		rec := do(srv, "GET", "/usage?"+bad, "127.0.0.1:1", nil)
		if rec.Code != 400 || rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: status %d %q, want 400 problem", bad, rec.Code, rec.Header().Get("Content-Type"))
		}
	}
	if page := getPage(t, srv, "/usage?limit=1000"); len(page.Clients) != 5 || page.NextCursor != "" {
		t.Errorf("limit=1000: %+v, want all 5 and no next_cursor", page)
	}
}

func getPage(t *testing.T, srv http.Handler, path string) usagehttp.UsagePage {
	t.Helper()
	rec := do(srv, "GET", path, "127.0.0.1:1", nil)
	if rec.Code != 200 {
		t.Fatalf("GET %s: status %d: %s", path, rec.Code, rec.Body)
	}
	var page usagehttp.UsagePage
	if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
		t.Fatal(err)
	}
	return page
}

func do(h http.Handler, method, target, remote string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	req.RemoteAddr = remote
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// GET /usage?service= ranks the service's clients by their calls to it:
// each row's total and last_seen are those of /usage/{client}?service=,
// paged through the same cursor; default is the unprefixed endpoints'
// service, an unknown service lists nobody, and an empty name is a 400.
func TestListUsageOfAService(t *testing.T) {
	at := func(min int) *timestamppb.Timestamp {
		return timestamppb.New(time.Date(2025, 6, 1, 12, min, 0, 0, time.UTC))
	}
	ep := func(n uint64, min int) *activitypb.EndpointUsage {
		return &activitypb.EndpointUsage{Count: n, LastSeen: at(min)}
	}
	usage := fakeUsage{
		"a": {Client: "a", Total: 12, LastSeen: at(9), Endpoints: map[string]*activitypb.EndpointUsage{"GET /x": ep(10, 9), "shop: GET /o": ep(2, 3)}},
		"b": {Client: "b", Total: 5, LastSeen: at(7), Endpoints: map[string]*activitypb.EndpointUsage{"shop: GET /o": ep(4, 7), "shop: POST /o": ep(1, 5)}},
		"c": {Client: "c", Total: 6, LastSeen: at(8), Endpoints: map[string]*activitypb.EndpointUsage{"shop: GET /o": ep(2, 8), "GET /x": ep(4, 1)}},
		"d": {Client: "d", Total: 1, LastSeen: at(2), Endpoints: map[string]*activitypb.EndpointUsage{"GET /x": ep(1, 2)}},
	}
	srv := serve(t, usage)
	list := func(service string) ([]string, int) {
		var rows []string
		total := -1
		path := "/usage?limit=1&service=" + service
		for pages := 0; path != ""; pages++ {
			if pages > 5 {
				t.Fatal("pagination does not end")
			}
			page := getPage(t, srv, path)
			if total >= 0 && page.Total != total {
				t.Fatalf("total_clients moved from %d to %d", total, page.Total)
			}
			total = page.Total
			for _, c := range page.Clients {
				var one usagehttp.ClientUsage
				if rec := do(srv, "GET", "/usage/"+c.Client+"?service="+service, "127.0.0.1:1", nil); json.Unmarshal(rec.Body.Bytes(), &one) != nil ||
					one.Total != c.Total || c.LastSeen == nil || !one.LastSeen.Equal(*c.LastSeen) {
					t.Errorf("service %s, row %+v: /usage/%s?service= says %d calls, last %v", service, c, c.Client, one.Total, one.LastSeen)
				}
				rows = append(rows, fmt.Sprintf("%s=%d", c.Client, c.Total))
			}
			path = ""
			if page.NextCursor != "" {
				path = "/usage?limit=1&service=" + service + "&cursor=" + page.NextCursor
			}
		}
		return rows, total
	}
	for service, want := range map[string][]string{
		"shop":    {"b=5", "a=2", "c=2"},
		"default": {"a=10", "c=4", "d=1"},
		"unknown": nil,
	} {
		if got, total := list(service); !slices.Equal(got, want) || total != len(want) {
			t.Errorf("service %s: %v (total_clients %d), want %v", service, got, total, want)
		}
	}
	if rec := do(srv, "GET", "/usage?service=", "127.0.0.1:1", nil); rec.Code != http.StatusBadRequest {
		t.Errorf("empty service: %d, want 400", rec.Code)
	}
}

package api_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/top"
)

// liveUsage is a usage table whose counts change between requests, read
// through a real index.
type liveUsage struct {
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
	l.top.Set(int32(len(client)%4), client, total, 0)
}

func (l *liveUsage) Get(c string) (*activitypb.ClientUsage, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.totals[c]; ok {
		return &activitypb.ClientUsage{Client: c, Total: t}, nil
	}
	return nil, nil
}

func (l *liveUsage) Page(after *top.Key, limit int) ([]top.Row, int, error) {
	return l.top.Page(after, limit), l.top.Clients(), nil
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
		srv, _, _ := newServer(t, usage)

		changed := map[string]bool{}
		seen := map[string]int{}
		var listed []api.ClientTotal
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
		var prev *api.ClientTotal
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
		c := api.EncodeCursor(k)
		got, err := api.DecodeCursor(c)
		if err != nil || got != k {
			t.Errorf("round trip of %+v: %+v, %v", k, got, err)
		}
		if strings.ContainsAny(c, "+/=") {
			t.Errorf("cursor %q is not URL-safe", c)
		}
	}
	for _, bad := range []string{"", "!!", "AA", "AQ", "AgFh", api.EncodeCursor(top.Key{Total: 1}),
		api.EncodeCursor(top.Key{Total: 1, Client: "\xff"}), api.EncodeCursor(top.Key{Total: 1, Client: strings.Repeat("c", 257)})} {
		if k, err := api.DecodeCursor(bad); err == nil {
			t.Errorf("DecodeCursor(%q) = %+v, want an error", bad, k)
		}
	}
}

func TestListUsageUnavailableBeforeRecovery(t *testing.T) {
	usage := newLiveUsage()
	usage.set("a", 1)
	usage.recovered = false
	srv, _, _ := newServer(t, usage)
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
		srv, _, _ := newServer(t, usage)
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
	srv, _, _ := newServer(t, usage)
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

package endpointindex

import (
	"fmt"
	"testing"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/processors/endpoints"
)

// seeded is an index of n endpoints over 4 partitions, with many ties.
func seeded(t testing.TB, n int) *Index {
	t.Helper()
	x := New()
	for i := range n {
		r := endpoints.NewRow()
		r.Calls = uint64(i % 97)
		r.Status[codecs.Class2xx], r.Status[codecs.Class5xx] = uint64(i%7), uint64(i%3)
		r.Latency.Add(int64(i%50) * 1000)
		v, err := endpoints.RowCodec{}.Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		x.set(int32(i%4), fmt.Sprintf("GET /e/%05d", i), v)
	}
	return x
}

// Paging by cursor visits every endpoint once, in order, whatever the ties.
func TestIndexPagesVisitEveryEndpointInOrder(t *testing.T) {
	const n = 2000
	x := seeded(t, n)
	for _, order := range Orders {
		var after *Cursor
		seen := map[string]bool{}
		var prev *Cursor
		for {
			p := x.Page(order, after, 37)
			if p.Endpoints != n {
				t.Fatalf("%d endpoints, want %d", p.Endpoints, n)
			}
			for _, s := range p.Rows {
				if seen[s.Endpoint] {
					t.Fatalf("%s: %s listed twice", order, s.Endpoint)
				}
				seen[s.Endpoint] = true
				c := order.Cursor(s)
				if prev != nil && prev.Before(c.Value, c.Endpoint) {
					t.Fatalf("%s: %v listed after %v", order, c, *prev)
				}
				prev = &c
			}
			if len(p.Rows) < 37 {
				break
			}
			after = prev
		}
		if len(seen) != n {
			t.Errorf("%s: listed %d of %d", order, len(seen), n)
		}
	}
}

func TestIndexFollowsDeletesAndPartitions(t *testing.T) {
	x := seeded(t, 100)
	x.delete(0, "GET /e/00000")
	if _, ok := x.Get("GET /e/00000"); ok || x.Page(ByCalls, nil, 1000).Endpoints != 99 {
		t.Errorf("delete not followed")
	}
	x.forget(1)
	if p := x.Page(ByCalls, nil, 1000); p.Endpoints != 74 || len(p.Rows) != 74 {
		t.Errorf("after forgetting a partition: %d endpoints, %d rows; want 74", p.Endpoints, len(p.Rows))
	}
	// A recovering partition is listed once recovered, with its latest values.
	x.recovering(1, map[string][]byte{})
	v, _ := endpoints.RowCodec{}.Encode(endpoints.NewRow())
	x.set(1, "GET /late", v)
	if _, ok := x.Get("GET /late"); ok {
		t.Error("listed before its partition recovered")
	}
	x.recovered(1)
	if _, ok := x.Get("GET /late"); !ok || x.Page(ByP99, nil, 1).Endpoints != 75 {
		t.Error("not listed after recovery")
	}
}

// BenchmarkIndexPage is a page of 50 at 10k endpoints: sorted once per
// change, then a binary search.
func BenchmarkIndexPage(b *testing.B) {
	x := seeded(b, 10_000)
	x.Page(ByP99, nil, 50)
	after := ByP99.Cursor(x.Page(ByP99, nil, 5000).Rows[4999])
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			x.Page(ByP99, &after, 50)
		}
	})
	b.Run("after a change", func(b *testing.B) {
		for b.Loop() {
			x.mu.Lock()
			x.changed()
			x.mu.Unlock()
			x.Page(ByP99, &after, 50)
		}
	})
}

package top

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/inarious/inarious/codecs"
)

// serviceRow is a client's row in the reference: its calls and last call
// per service ("" is the default service).
type serviceRow struct {
	calls map[string]uint64
	seen  map[string]int64
}

func (r serviceRow) usage() Usage {
	u := Usage{}
	// Map order: the index must not depend on the order services come in.
	for svc, n := range r.calls {
		u.Total += n
		u.LastSeen = max(u.LastSeen, r.seen[svc])
		u.Services = append(u.Services, codecs.ServiceCalls{Service: []byte(svc), Calls: n, LastSeen: r.seen[svc]})
	}
	return u
}

// serviceReference is the index done the slow, obvious way.
type serviceReference map[string]serviceRow

// ranking is the reference's ranking of service: its clients with their
// calls to it and the last of them, in index order.
func (r serviceReference) ranking(service string) reference {
	out := reference{}
	for c, row := range r {
		if n := row.calls[service]; n > 0 {
			out[c] = Row{Client: c, Total: n, LastSeen: row.seen[service]}
		}
	}
	return out
}

// pageAllOf reads a whole ranking page by page.
func pageAllOf(top *Index, r Ranking, limit int) []Row {
	var all []Row
	var after *Key
	for {
		rows := top.Top(r, after, limit).Rows
		all = append(all, rows...)
		if len(rows) < limit {
			return all
		}
		k := rows[len(rows)-1].Key()
		after = &k
	}
}

// rankings counts the service rankings the shards hold, and fails on an
// empty one: a service without clients must not cost memory.
func rankings(t *testing.T, top *Index) int {
	t.Helper()
	n := 0
	for p, s := range *top.shards.Load() {
		if s == nil {
			continue
		}
		s.mu.Lock()
		for name, r := range s.services {
			if !s.recovering && r != s.sole && r.tree.Len() == 0 {
				t.Fatalf("partition %d keeps an empty ranking of service %q", p, name)
			}
			n++
		}
		s.mu.Unlock()
	}
	return n
}

// TestServiceRankingsMatchReference: after random writes (calls added to
// one service, services gained and lost, rows rewritten, deletes) and
// partitions rebuilt (seeded, then recovered), every service's ranking
// lists its clients with their calls to it, in order, paged, with its
// counts, and no empty ranking is kept. Half the seeds call one service
// but rarely, so that shards go from one service to several and back.
func TestServiceRankingsMatchReference(t *testing.T) {
	for seed := uint64(1); seed <= 12; seed++ {
		services := []string{"", "shop", "billing", "search", "auth"}
		rng := rand.New(rand.NewPCG(seed, 42))
		draw := func() string {
			if seed%2 == 0 && rng.IntN(400) > 0 {
				return ""
			}
			return services[rng.IntN(len(services))]
		}
		top, ref := New(), serviceReference{}
		const partitions, clients = 4, 300
		write := func(c string, row serviceRow) {
			top.Set(partitionOf(c, partitions), c, row.usage())
			ref[c] = row
		}
		for i := range 15000 {
			c := fmt.Sprintf("client-%d", rng.IntN(clients))
			p := partitionOf(c, partitions)
			old := ref[c]
			row := serviceRow{calls: maps.Clone(old.calls), seen: maps.Clone(old.seen)}
			if row.calls == nil {
				row = serviceRow{calls: map[string]uint64{}, seen: map[string]int64{}}
			}
			switch k := rng.IntN(1000); {
			case k < 2:
				// The partition is recovered anew: storage, then more
				// writes, then the bulk build.
				rp := int32(rng.IntN(partitions))
				top.Recovering(rp)
				var stored []storedRow
				for c, row := range ref {
					if partitionOf(c, partitions) == rp {
						stored = append(stored, storedRow{client: c, Usage: row.usage()})
					}
				}
				if rng.IntN(2) == 0 { // as storage iterates: by client
					slices.SortFunc(stored, func(a, b storedRow) int { return strings.Compare(a.client, b.client) })
				}
				top.Seed(rp, rowsOf(stored))
				for range 30 {
					c := fmt.Sprintf("client-%d", rng.IntN(clients))
					if partitionOf(c, partitions) != rp || ref[c].calls == nil {
						continue
					}
					row := serviceRow{calls: maps.Clone(ref[c].calls), seen: maps.Clone(ref[c].seen)}
					svc := draw()
					row.calls[svc]++
					row.seen[svc] = int64(i)
					write(c, row)
				}
				top.Recovered(rp)
			case k < 4:
				top.Forget(int32(rng.IntN(partitions)))
				// A forgotten partition is seeded again from its storage,
				// as when the member gets it back.
				for p := range int32(partitions) {
					if _, _, ranked := top.Partition(AllCalls, p); ranked {
						continue
					}
					top.Recovering(p)
					var stored []storedRow
					for c, row := range ref {
						if partitionOf(c, partitions) == p {
							stored = append(stored, storedRow{client: c, Usage: row.usage()})
						}
					}
					top.Seed(p, rowsOf(stored))
					top.Recovered(p)
				}
			case k < 60:
				top.Delete(p, c)
				delete(ref, c)
			case k < 90:
				// A row rewritten: services dropped and added.
				row = serviceRow{calls: map[string]uint64{}, seen: map[string]int64{}}
				for range 1 + rng.IntN(3) {
					svc := draw()
					row.calls[svc] += uint64(1 + rng.IntN(9))
					row.seen[svc] = int64(rng.IntN(i + 1))
				}
				write(c, row)
			default:
				// One call, mostly to the service the client already calls.
				svc := draw()
				if len(row.calls) > 0 && rng.IntN(4) > 0 {
					svc = slices.Sorted(maps.Keys(row.calls))[0]
				}
				row.calls[svc]++
				if rng.IntN(10) > 0 { // sometimes an older request time
					row.seen[svc] = int64(i)
				}
				write(c, row)
			}
			if i%1500 != 0 && i != 14999 {
				continue
			}
			for _, svc := range append(services, "unknown") {
				want := ref.ranking(svc)
				page := top.Top(ByService(svc), nil, len(want)+10)
				if !slices.Equal(page.Rows, want.sorted()) {
					t.Fatalf("seed %d step %d service %q: ranking differs\n got %v\nwant %v", seed, i, svc, head(page.Rows), head(want.sorted()))
				}
				if page.Clients != len(want) || page.Requests != want.sum() {
					t.Fatalf("seed %d step %d service %q: %d clients %d calls, want %d %d", seed, i, svc, page.Clients, page.Requests, len(want), want.sum())
				}
				limit := 1 + rng.IntN(40)
				if got := pageAllOf(top, ByService(svc), limit); !slices.Equal(got, want.sorted()) {
					t.Fatalf("seed %d step %d service %q: pages of %d differ", seed, i, svc, limit)
				}
			}
			all := reference{}
			for c, row := range ref {
				u := row.usage()
				all[c] = Row{Client: c, Total: u.Total, LastSeen: u.LastSeen}
			}
			if got := pageAllOf(top, AllCalls, 50); !slices.Equal(got, all.sorted()) {
				t.Fatalf("seed %d step %d: the ranking by all calls differs", seed, i)
			}
			want := 0
			for p := range int32(partitions) {
				seen := map[string]bool{}
				for c, row := range ref {
					if partitionOf(c, partitions) == p {
						for svc := range row.calls {
							seen[svc] = true
						}
					}
				}
				want += len(seen)
			}
			if n := rankings(t, top); n != want {
				t.Fatalf("seed %d step %d: %d service rankings kept, want %d (one per partition and service with clients)", seed, i, n, want)
			}
		}
	}
}

// TestServiceRankingOfOneServiceClients: a client whose calls all went to
// one service shares that service's list (no allocation of its own), and
// moves to a list of its own when its last call is not its row's or it
// calls a second service.
func TestServiceRankingOfOneServiceClients(t *testing.T) {
	top := New()
	one := func(svc string, calls uint64, seen int64) Usage {
		return Usage{Total: calls, LastSeen: seen, Services: []codecs.ServiceCalls{{Service: []byte(svc), Calls: calls, LastSeen: seen}}}
	}
	top.Set(0, "a", one("shop", 3, 30))
	top.Set(0, "b", one("shop", 5, 50))
	s := (*top.shards.Load())[0]
	shop := s.services["shop"]
	if m := s.clients["a"]; m.services != shop.whole || s.clients["b"].services != shop.whole {
		t.Fatalf("one-service clients do not share the service's list")
	}
	if s.sole != shop {
		t.Fatalf("a shard of one service's whole clients keeps a tree for it")
	}
	// An older request time came last: the row's last call is not the
	// service's.
	top.Set(0, "a", Usage{Total: 4, LastSeen: 20, Services: []codecs.ServiceCalls{{Service: []byte("shop"), Calls: 4, LastSeen: 30}}})
	if m := s.clients["a"]; m.services == shop.whole || s.sole != nil {
		t.Fatalf("a client whose service was last called after its row's last call shares the list")
	}
	got := top.Top(ByService("shop"), nil, 10).Rows
	if want := []Row{{Client: "b", Total: 5, LastSeen: 50}, {Client: "a", Total: 4, LastSeen: 30}}; !slices.Equal(got, want) {
		t.Fatalf("shop: %v, want %v", got, want)
	}
	top.Set(0, "b", Usage{Total: 7, LastSeen: 70, Services: []codecs.ServiceCalls{
		{Service: []byte("shop"), Calls: 5, LastSeen: 50}, {Service: nil, Calls: 2, LastSeen: 70}}})
	if got := top.Top(ByService(""), nil, 10); len(got.Rows) != 1 || got.Rows[0] != (Row{Client: "b", Total: 2, LastSeen: 70}) || got.Clients != 1 || got.Requests != 2 {
		t.Fatalf("default service: %+v", got)
	}
	top.Set(0, "b", one("", 9, 90)) // shop's calls gone: a rewritten row
	if got := top.Top(ByService("shop"), nil, 10); len(got.Rows) != 1 || got.Rows[0].Client != "a" || got.Clients != 1 || got.Requests != 4 {
		t.Fatalf("shop after b left it: %+v", got)
	}
	top.Delete(0, "a")
	if _, ok := s.services["shop"]; ok {
		t.Fatalf("the ranking of a service without clients is kept")
	}
	if got := top.Top(ByService("shop"), nil, 10); len(got.Rows) != 0 || got.Clients != 0 {
		t.Fatalf("a service without clients: %+v", got)
	}

	// A shard of one service emptied, then written again.
	top.Set(1, "c", one("shop", 2, 20))
	s = (*top.shards.Load())[1]
	top.Delete(1, "c")
	if len(s.services) != 0 || s.sole != nil {
		t.Fatalf("an emptied shard keeps service %v", s.services)
	}
	top.Set(1, "d", one("billing", 1, 10))
	if got := top.Top(ByService("billing"), nil, 10); s.sole == nil || len(got.Rows) != 1 || got.Rows[0] != (Row{Client: "d", Total: 1, LastSeen: 10}) {
		t.Fatalf("billing after the shard was emptied: %+v", got)
	}
}

// TestSeedWhileWrittenKeepsBoth: a partition written while its storage is
// read (against Seed's contract) ends with the rows read and the write,
// services included.
func TestSeedWhileWrittenKeepsBoth(t *testing.T) {
	top := New()
	top.Recovering(0)
	shop := func(calls uint64) Usage {
		return Usage{Total: calls, LastSeen: 1, Services: []codecs.ServiceCalls{{Service: []byte("shop"), Calls: calls, LastSeen: 1}}}
	}
	top.Seed(0, func(yield func(string, Usage) bool) {
		yield("a", shop(3))
		top.Set(0, "late", shop(9)) // the shard is no longer empty
		yield("b", Usage{Total: 4, LastSeen: 2, Services: []codecs.ServiceCalls{{Service: []byte("shop"), Calls: 1, LastSeen: 2}, {Calls: 3, LastSeen: 2}}})
	})
	top.Recovered(0)
	want := []Row{{Client: "late", Total: 9, LastSeen: 1}, {Client: "a", Total: 3, LastSeen: 1}, {Client: "b", Total: 1, LastSeen: 2}}
	if got := top.Top(ByService("shop"), nil, 10).Rows; !slices.Equal(got, want) {
		t.Fatalf("shop: %v, want %v", got, want)
	}
	if got := top.Top(ByService(""), nil, 10).Rows; len(got) != 1 || got[0] != (Row{Client: "b", Total: 3, LastSeen: 2}) {
		t.Fatalf("default: %v", got)
	}
}

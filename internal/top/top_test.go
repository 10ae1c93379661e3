package top

import (
	"fmt"
	"iter"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

// storedRow is a client's row as a partition's storage holds it.
type storedRow struct {
	client string
	Usage
}

// rowsOf is Seed's input: rows in the order given.
func rowsOf(rows []storedRow) iter.Seq2[string, Usage] {
	return func(yield func(string, Usage) bool) {
		for _, r := range rows {
			if !yield(r.client, r.Usage) {
				return
			}
		}
	}
}

// reference is the index done the slow, obvious way.
type reference map[string]Row

func (r reference) sorted() []Row {
	rows := make([]Row, 0, len(r))
	for _, row := range r {
		rows = append(rows, row)
	}
	slices.SortFunc(rows, func(a, b Row) int {
		if a.Key().Before(b.Key()) {
			return -1
		}
		return 1
	})
	return rows
}

func (r reference) sum() (s uint64) {
	for _, row := range r {
		s += row.Total
	}
	return s
}

// pageAll reads the whole index page by page.
func pageAll(top *Index, limit int) []Row {
	var all []Row
	var after *Key
	for {
		rows := top.Page(after, limit)
		all = append(all, rows...)
		if len(rows) < limit {
			return all
		}
		k := rows[len(rows)-1].Key()
		after = &k
	}
}

func partitionOf(client string, partitions int) int32 {
	h := 0
	for _, c := range []byte(client) {
		h = h*31 + int(c)
	}
	return int32(h % partitions)
}

func TestTopMatchesSortedReferenceAfterRandomUpdates(t *testing.T) {
	for seed := uint64(1); seed <= 10; seed++ {
		rng := rand.New(rand.NewPCG(seed, 99))
		top, ref := New(), reference{}
		const partitions, clients = 5, 400
		var incr uint64
		for i := range 20000 {
			c := fmt.Sprintf("client-%d", rng.IntN(clients))
			p := partitionOf(c, partitions)
			switch {
			case rng.IntN(3000) == 0:
				// The partition is recovered anew: storage first, then
				// more updates, then the bulk build.
				rp := int32(rng.IntN(partitions))
				top.Recovering(rp)
				var stored []storedRow
				for c, row := range ref {
					if partitionOf(c, partitions) == rp {
						stored = append(stored, storedRow{client: c, Usage: Usage{Total: row.Total, LastSeen: row.LastSeen}})
						incr += row.Total // a rebuild starts from zero
					}
				}
				if rng.IntN(2) == 0 { // as storage iterates: by client
					slices.SortFunc(stored, func(a, b storedRow) int { return strings.Compare(a.client, b.client) })
				}
				top.Seed(rp, rowsOf(stored))
				for j := range 50 {
					c := fmt.Sprintf("client-%d", rng.IntN(clients))
					if partitionOf(c, partitions) != rp {
						continue
					}
					row := Row{Client: c, Total: ref[c].Total + uint64(rng.IntN(3)), LastSeen: int64(-j)}
					incr += row.Total - ref[c].Total
					top.Set(rp, c, Usage{Total: row.Total, LastSeen: row.LastSeen})
					ref[c] = row
				}
				top.Recovered(rp)
			case rng.IntN(20) == 0:
				top.Delete(p, c)
				delete(ref, c)
			default:
				// Mostly increments, sometimes a drop (a table rewritten by hand).
				total := ref[c].Total + uint64(rng.IntN(5))
				if rng.IntN(30) == 0 {
					total = uint64(rng.IntN(10))
				}
				if total > ref[c].Total {
					incr += total - ref[c].Total
				}
				row := Row{Client: c, Total: total, LastSeen: int64(i)}
				top.Set(p, c, Usage{Total: row.Total, LastSeen: row.LastSeen})
				ref[c] = row
			}
			if i%2500 == 0 || i == 19999 {
				want := ref.sorted()
				if got := top.Page(nil, len(want)+10); !slices.Equal(got, want) {
					t.Fatalf("seed %d step %d: index order differs from the sorted reference\n got %v\nwant %v", seed, i, head(got), head(want))
				}
				limit := 1 + rng.IntN(50)
				if got := pageAll(top, limit); !slices.Equal(got, want) {
					t.Fatalf("seed %d step %d: pages of %d differ from the sorted reference", seed, i, limit)
				}
				if top.Clients() != len(ref) || top.Requests() != ref.sum() || top.Increments() != incr {
					t.Fatalf("seed %d: clients %d requests %d increments %d; want %d %d %d",
						seed, top.Clients(), top.Requests(), top.Increments(), len(ref), ref.sum(), incr)
				}
			}
		}
	}
}

func head(rows []Row) []Row { return rows[:min(len(rows), 8)] }

func TestTopPageAfterAKeyThatIsGone(t *testing.T) {
	top := New()
	for i, total := range []uint64{9, 7, 7, 5, 1} {
		top.Set(int32(i%2), fmt.Sprintf("c%d", i), Usage{Total: total, LastSeen: 0})
	}
	// c1 (7) was the last row handed out, then it moved to 10.
	top.Set(1, "c1", Usage{Total: 10, LastSeen: 0})
	got := top.Page(&Key{Total: 7, Client: "c1"}, 10)
	want := []string{"c2", "c3", "c4"}
	var names []string
	for _, r := range got {
		names = append(names, r.Client)
	}
	if !slices.Equal(names, want) {
		t.Errorf("after (7, c1): %v, want %v", names, want)
	}
	if rows := top.Page(&Key{Total: 0, Client: "zzz"}, 10); len(rows) != 0 {
		t.Errorf("after the end: %v", rows)
	}
	if rows := top.Page(nil, 0); rows != nil {
		t.Errorf("limit 0: %v", rows)
	}
}

func TestTopRecoveryRebuildsAPartition(t *testing.T) {
	top := New()
	top.Set(0, "keep", Usage{Total: 3, LastSeen: 30})
	top.Set(1, "stale", Usage{Total: 100, LastSeen: 0})
	// Partition 1 is recovered again: its old rows go, storage and changelog
	// come back in any order, with repeated and deleted clients.
	top.Recovering(1)
	if got := top.Page(nil, 10); len(got) != 1 || got[0].Client != "keep" {
		t.Errorf("while recovering, pages list %v, want only the other partition", got)
	}
	top.Set(1, "b", Usage{Total: 1, LastSeen: 0})
	top.Set(1, "a", Usage{Total: 2, LastSeen: 20})
	top.Set(1, "z", Usage{Total: 8, LastSeen: 80})
	top.Set(1, "b", Usage{Total: 2, LastSeen: 21})
	top.Set(1, "gone", Usage{Total: 5, LastSeen: 0})
	top.Delete(1, "gone")
	if top.Clients() != 1 || top.Requests() != 3 {
		t.Errorf("while recovering: clients %d requests %d, want only the other partition's 1 and 3", top.Clients(), top.Requests())
	}
	top.Recovered(1)
	if top.Clients() != 4 || top.Requests() != 15 || top.Increments() != 3+100+12 {
		t.Errorf("after recovery: clients %d requests %d increments %d, want 4 15 115", top.Clients(), top.Requests(), top.Increments())
	}
	want := []Row{{Client: "z", Total: 8, LastSeen: 80}, {Client: "keep", Total: 3, LastSeen: 30}, {Client: "a", Total: 2, LastSeen: 20}, {Client: "b", Total: 2, LastSeen: 21}}
	if got := top.Page(nil, 10); !slices.Equal(got, want) {
		t.Errorf("after recovery: %v, want %v", got, want)
	}
	// Recovered rows update like any other.
	top.Set(1, "a", Usage{Total: 20, LastSeen: 0})
	if got := top.Page(nil, 1); got[0].Client != "a" || top.Clients() != 4 || top.Requests() != 33 {
		t.Errorf("update after recovery: first %v clients %d requests %d", got, top.Clients(), top.Requests())
	}
	top.Recovered(1) // a second signal changes nothing
	if got := top.Page(nil, 10); len(got) != 4 {
		t.Errorf("after a second Recovered: %v", got)
	}
	// Seeding a partition that is not recovering is a Set per row.
	top.Seed(0, rowsOf([]storedRow{{client: "seeded", Usage: Usage{Total: 4}}}))
	if got := top.Page(nil, 3); got[2].Client != "seeded" || top.Clients() != 5 {
		t.Errorf("seeded outside recovery: %v, clients %d", got, top.Clients())
	}
}

// TestTopConcurrentPartitionsAndReaders feeds each partition from its own
// goroutine, as goka does, while readers page; run with -race.
func TestTopConcurrentPartitionsAndReaders(t *testing.T) {
	top := New()
	const partitions, perPartition, updates = 8, 200, 3000
	finals := make([]map[string]uint64, partitions)
	var writers, readers sync.WaitGroup
	stop := make(chan struct{})
	for r := range 4 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				rows := top.Page(nil, 20+r)
				for i := 1; i < len(rows); i++ {
					if !rows[i-1].Key().Before(rows[i].Key()) {
						t.Errorf("page out of order: %v then %v", rows[i-1], rows[i])
						return
					}
				}
				_ = top.Clients()
			}
		})
	}
	for p := range partitions {
		finals[p] = map[string]uint64{}
		writers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(p), 1))
			for range updates {
				c := fmt.Sprintf("p%d-c%d", p, rng.IntN(perPartition))
				finals[p][c] += uint64(1 + rng.IntN(3))
				top.Set(int32(p), c, Usage{Total: finals[p][c], LastSeen: 0})
			}
		})
	}
	writers.Wait()
	close(stop)
	readers.Wait()
	ref := reference{}
	for _, m := range finals {
		for c, total := range m {
			ref[c] = Row{Client: c, Total: total}
		}
	}
	if got, want := pageAll(top, 37), ref.sorted(); !slices.Equal(got, want) {
		t.Fatalf("after concurrent updates: %d rows, want %d in order", len(got), len(want))
	}
	if top.Requests() != ref.sum() || top.Increments() != ref.sum() {
		t.Errorf("requests %d increments %d, want %d", top.Requests(), top.Increments(), ref.sum())
	}
}

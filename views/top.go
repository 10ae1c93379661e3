package views

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/tidwall/btree"
)

// TopRow is one client in the top-clients index.
type TopRow struct {
	Client   string
	Total    uint64
	LastSeen int64 // Unix nanoseconds; 0 when the value has none
}

// TopKey is a row's position in the order of the index: total calls
// descending, then client ascending. It identifies a row whatever its
// payload, so it makes a stable pagination cursor.
type TopKey struct {
	Total  uint64
	Client string
}

// Key is the row's position.
func (r TopRow) Key() TopKey { return TopKey{Total: r.Total, Client: r.Client} }

// Before reports whether a comes before b: more calls first, ties by client.
func (a TopKey) Before(b TopKey) bool {
	if a.Total != b.Total {
		return a.Total > b.Total
	}
	return a.Client < b.Client
}

func rowLess(a, b TopRow) bool {
	if a.Total != b.Total {
		return a.Total > b.Total
	}
	return a.Client < b.Client
}

// Top keeps every client of the usage table ordered by total calls, updated
// one change at a time: O(log n) per change, O(log n + k) for k rows.
//
// It is sharded by table partition: each partition's updates come from one
// goroutine, so shards never contend with each other, and a partition's
// shard can be rebuilt from that partition's storage on its own. Readers
// merge the shards (P·(log n + k) for P partitions).
type Top struct {
	grow   sync.Mutex
	shards atomic.Pointer[[]*topShard]

	clients atomic.Int64
	sum     atomic.Uint64 // sum of all totals
	incr    atomic.Uint64 // sum of every increase of a total, ever
	version atomic.Uint64 // bumped by every change
}

type topShard struct {
	mu   sync.RWMutex
	tree *btree.BTreeG[TopRow]
	// totals finds a client's row in the tree. Map key and row share one
	// string, so a client costs its name once.
	totals map[string]uint64
}

func newTree() *btree.BTreeG[TopRow] {
	// Locking is the shard's: a read takes the tree and the map together.
	return btree.NewBTreeGOptions(rowLess, btree.Options{NoLocks: true})
}

func newTopShard() *topShard {
	return &topShard{tree: newTree(), totals: make(map[string]uint64)}
}

// NewTop returns an empty index.
func NewTop() *Top {
	t := &Top{}
	t.shards.Store(new([]*topShard))
	return t
}

func (t *Top) shard(partition int32) *topShard {
	if s := *t.shards.Load(); int(partition) < len(s) && s[partition] != nil {
		return s[partition]
	}
	t.grow.Lock()
	defer t.grow.Unlock()
	s := *t.shards.Load()
	if int(partition) < len(s) && s[partition] != nil {
		return s[partition]
	}
	n := slices.Clone(s)
	if int(partition) >= len(n) {
		n = append(n, make([]*topShard, int(partition)+1-len(n))...)
	}
	n[partition] = newTopShard()
	t.shards.Store(&n)
	return n[partition]
}

func (t *Top) changed(oldTotal, newTotal uint64, clientsDelta int64) {
	if clientsDelta != 0 {
		t.clients.Add(clientsDelta)
	}
	t.sum.Add(newTotal - oldTotal) // wraps correctly for decreases
	if newTotal > oldTotal {
		t.incr.Add(newTotal - oldTotal)
	}
	t.version.Add(1)
}

// Set records client's current total and last-seen time (Unix ns) in the
// shard of its table partition.
func (t *Top) Set(partition int32, client string, total uint64, lastSeen int64) {
	s := t.shard(partition)
	s.mu.Lock()
	old, ok := s.totals[client]
	if ok {
		prev, _ := s.tree.Delete(TopRow{Client: client, Total: old})
		client = prev.Client // keep the one stored copy of the name
	}
	s.tree.Set(TopRow{Client: client, Total: total, LastSeen: lastSeen})
	s.totals[client] = total
	s.mu.Unlock()
	var added int64
	if !ok {
		added = 1
	}
	t.changed(old, total, added)
}

// Delete drops client from the shard of its table partition.
func (t *Top) Delete(partition int32, client string) {
	s := t.shard(partition)
	s.mu.Lock()
	old, ok := s.totals[client]
	if ok {
		s.tree.Delete(TopRow{Client: client, Total: old})
		delete(s.totals, client)
	}
	s.mu.Unlock()
	if ok {
		t.changed(old, 0, -1)
	}
}

// Load replaces the contents of a partition's shard with rows (one per
// client, in any order), e.g. from local storage when it is opened. Sorting
// first lets the tree be bulk-loaded, much faster than one insert per row.
func (t *Top) Load(partition int32, rows []TopRow) {
	slices.SortFunc(rows, func(a, b TopRow) int {
		switch {
		case rowLess(a, b):
			return -1
		case rowLess(b, a):
			return 1
		}
		return 0
	})
	tree := newTree()
	totals := make(map[string]uint64, len(rows))
	var sum uint64
	for _, r := range rows {
		if _, dup := totals[r.Client]; dup {
			continue // storage keys are unique; a duplicate would corrupt the shard
		}
		tree.Load(r)
		totals[r.Client] = r.Total
		sum += r.Total
	}
	s := t.shard(partition)
	s.mu.Lock()
	oldN, oldSum := int64(len(s.totals)), uint64(0)
	for _, v := range s.totals {
		oldSum += v
	}
	s.tree, s.totals = tree, totals
	s.mu.Unlock()
	t.clients.Add(int64(len(totals)) - oldN)
	t.sum.Add(sum - oldSum)
	t.version.Add(1)
}

// Page returns up to limit rows in order, starting after the row at key
// after (from the first row when after is nil). A row whose total changed
// since after was handed out moves; every other row is still found exactly
// once across pages.
func (t *Top) Page(after *TopKey, limit int) []TopRow {
	if limit <= 0 {
		return nil
	}
	shards := *t.shards.Load()
	parts := make([][]TopRow, 0, len(shards))
	for _, s := range shards {
		if s == nil {
			continue
		}
		if rows := s.page(after, limit); len(rows) > 0 {
			parts = append(parts, rows)
		}
	}
	if len(parts) == 1 {
		return parts[0]
	}
	// Merge the sorted shard pages: k steps over P heads.
	out := make([]TopRow, 0, limit)
	for len(out) < limit && len(parts) > 0 {
		best := 0
		for i := 1; i < len(parts); i++ {
			if rowLess(parts[i][0], parts[best][0]) {
				best = i
			}
		}
		out = append(out, parts[best][0])
		if parts[best] = parts[best][1:]; len(parts[best]) == 0 {
			parts = slices.Delete(parts, best, best+1)
		}
	}
	return out
}

func (s *topShard) page(after *TopKey, limit int) []TopRow {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := min(limit, s.tree.Len())
	if n == 0 {
		return nil
	}
	rows := make([]TopRow, 0, n)
	collect := func(r TopRow) bool {
		rows = append(rows, r)
		return len(rows) < limit
	}
	if after == nil {
		s.tree.Scan(collect)
		return rows
	}
	s.tree.Ascend(TopRow{Client: after.Client, Total: after.Total}, func(r TopRow) bool {
		if r.Total == after.Total && r.Client == after.Client {
			return true // the cursor row itself was on the previous page
		}
		return collect(r)
	})
	return rows
}

// Clients is the number of clients in the index.
func (t *Top) Clients() int { return int(t.clients.Load()) }

// Requests is the sum of all clients' totals.
func (t *Top) Requests() uint64 { return t.sum.Load() }

// Increments is the sum of every increase of a client's total the index has
// seen, replayed history included; differences of it count new calls.
func (t *Top) Increments() uint64 { return t.incr.Load() }

// Version changes whenever the index does.
func (t *Top) Version() uint64 { return t.version.Load() }

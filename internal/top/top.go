// Package top keeps the clients of the usage table ranked by total calls
// (total descending, then client), updated in O(log n) per change and paged
// in O(log n + k): the read side behind GET /usage and the dashboard.
package top

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tidwall/btree"
)

// Row is one client in the top-clients index.
type Row struct {
	Client   string
	Total    uint64
	LastSeen int64 // Unix nanoseconds; 0 when the value has none
}

// Key is a row's position in the order of the index: total calls
// descending, then client ascending. It identifies a row whatever its
// payload, so it makes a stable pagination cursor.
type Key struct {
	Total  uint64
	Client string
}

// Key is the row's position.
func (r Row) Key() Key { return Key{Total: r.Total, Client: r.Client} }

// Before reports whether a comes before b: more calls first, ties by client.
func (a Key) Before(b Key) bool {
	if a.Total != b.Total {
		return a.Total > b.Total
	}
	return a.Client < b.Client
}

func rowLess(a, b Row) bool { return a.Key().Before(b.Key()) }

// item is a row as the tree holds it. prefix (the client's first 8 bytes,
// big-endian) settles most comparisons inside the node's own memory instead
// of following the string pointer (a cache miss each).
type item struct {
	total  uint64
	prefix uint64
	client string
}

func newItem(client string, total uint64) item {
	var p uint64
	for i := range 8 {
		p <<= 8
		if i < len(client) {
			p |= uint64(client[i])
		}
	}
	return item{total: total, prefix: p, client: client}
}

func itemLess(a, b item) bool {
	if a.total != b.total {
		return a.total > b.total
	}
	if a.prefix != b.prefix {
		return a.prefix < b.prefix
	}
	return a.client < b.client
}

func itemCmp(a, b item) int {
	switch {
	case itemLess(a, b):
		return -1
	case itemLess(b, a):
		return 1
	}
	return 0
}

// meta is what the index knows of a client besides its name.
type meta struct {
	total    uint64
	lastSeen int64
}

// Index keeps every client of the usage table ordered by total calls, updated
// one change at a time: O(log n) per change, O(log n + k) for k rows.
//
// It is sharded by table partition: each partition's updates come from one
// goroutine, so shards never contend with each other, and a partition's
// shard is rebuilt on its own while goka recovers it. Readers merge the
// shards (P·(log n + k) for P partitions).
type Index struct {
	grow   sync.Mutex
	shards atomic.Pointer[[]*topShard]

	clients atomic.Int64
	sum     atomic.Uint64 // sum of all totals
	incr    atomic.Uint64 // sum of every increase of a total, ever
	version atomic.Uint64 // bumped by every change
}

type topShard struct {
	// A plain mutex: one goroutine writes a shard, readers hold it for one
	// page, and it costs an update less than an RWMutex does.
	mu   sync.Mutex
	tree *btree.BTreeG[item]
	// clients finds a client's row in the tree. Map key and tree item share
	// one string, so a client costs its name once.
	clients map[string]meta
	// sum is the shard's sum of totals, counted while it is ranked.
	sum uint64
	// While the partition recovers only clients is kept up to date, and the
	// Index's counters leave the shard out; the tree is built and the shard
	// counted in one sorted pass when recovery ends, several times cheaper
	// than an insert (and a lookup) per changelog record.
	recovering bool
}

func newTree() *btree.BTreeG[item] {
	// Locking is the shard's: a read takes the tree and the map together.
	return btree.NewBTreeGOptions(itemLess, btree.Options{NoLocks: true})
}

func newTopShard() *topShard {
	return &topShard{tree: newTree(), clients: make(map[string]meta)}
}

// New returns an empty index.
func New() *Index {
	t := &Index{}
	t.shards.Store(new([]*topShard))
	return t
}

func (t *Index) shard(partition int32) *topShard {
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

func (t *Index) changed(oldTotal, newTotal uint64, clientsDelta int64) {
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
func (t *Index) Set(partition int32, client string, total uint64, lastSeen int64) {
	s := t.shard(partition)
	s.mu.Lock()
	if s.recovering {
		s.clients[client] = meta{total: total, lastSeen: lastSeen}
		s.mu.Unlock()
		return
	}
	old, ok := s.clients[client]
	if ok {
		prev, _ := s.tree.Delete(newItem(client, old.total))
		client = prev.client // keep the one stored copy of the name
	}
	s.tree.Set(newItem(client, total))
	s.clients[client] = meta{total: total, lastSeen: lastSeen}
	s.sum += total - old.total
	s.mu.Unlock()
	var added int64
	if !ok {
		added = 1
	}
	t.changed(old.total, total, added)
}

// Delete drops client from the shard of its table partition.
func (t *Index) Delete(partition int32, client string) {
	s := t.shard(partition)
	s.mu.Lock()
	old, ok := s.clients[client]
	if ok {
		delete(s.clients, client)
		if s.recovering {
			s.mu.Unlock()
			return
		}
		s.tree.Delete(newItem(client, old.total))
		s.sum -= old.total
	}
	s.mu.Unlock()
	if ok {
		t.changed(old.total, 0, -1)
	}
}

// Recovering empties a partition's shard for a rebuild: from now until
// Recovered, Set and Delete keep only its map, and pages and counters leave
// it out.
func (t *Index) Recovering(partition int32) {
	s := t.shard(partition)
	s.mu.Lock()
	var oldN int64
	var oldSum uint64
	if !s.recovering {
		oldN, oldSum = int64(len(s.clients)), s.sum
	}
	s.tree, s.clients, s.sum, s.recovering = newTree(), make(map[string]meta), 0, true
	s.mu.Unlock()
	t.clients.Add(-oldN)
	t.sum.Add(-oldSum)
	t.version.Add(1)
}

// Seed loads a recovering partition's stored rows (one per client), as
// goka opens its storage. Rows in client order, as storage iterates them,
// only need a stable sort by total to be in index order: no string
// comparisons. A seeded partition is ranked at once and takes the updates
// of the catch-up that follows one by one; an empty one (a cold start)
// stays in bulk mode until Recovered.
func (t *Index) Seed(partition int32, rows []Row) {
	s := t.shard(partition)
	s.mu.Lock()
	if !s.recovering || len(s.clients) > 0 {
		s.mu.Unlock()
		for _, r := range rows {
			t.Set(partition, r.Client, r.Total, r.LastSeen)
		}
		return
	}
	defer s.mu.Unlock()
	if len(rows) == 0 {
		return
	}
	items := make([]item, 0, len(rows))
	clients := make(map[string]meta, len(rows))
	var sum uint64
	for _, r := range rows {
		if _, dup := clients[r.Client]; dup {
			continue // storage keys are unique; a duplicate would corrupt the tree
		}
		clients[r.Client] = meta{total: r.Total, lastSeen: r.LastSeen}
		items = append(items, newItem(r.Client, r.Total))
		sum += r.Total
	}
	tree := newTree()
	if slices.IsSortedFunc(items, func(a, b item) int { return strings.Compare(a.client, b.client) }) {
		// Sort positions by (total desc, position): integers only.
		type pos struct {
			total uint64
			i     int
		}
		order := make([]pos, len(items))
		for i, it := range items {
			order[i] = pos{it.total, i}
		}
		slices.SortFunc(order, func(a, b pos) int {
			if c := cmp.Compare(b.total, a.total); c != 0 {
				return c
			}
			return cmp.Compare(a.i, b.i)
		})
		for _, o := range order {
			tree.Load(items[o.i])
		}
	} else {
		slices.SortFunc(items, itemCmp)
		for _, it := range items {
			tree.Load(it)
		}
	}
	s.tree, s.clients, s.sum, s.recovering = tree, clients, sum, false
	t.clients.Add(int64(len(clients)))
	t.sum.Add(sum)
	t.incr.Add(sum)
	t.version.Add(1)
}

// Recovered ends a rebuild: it bulk-loads the partition's tree, sorted.
func (t *Index) Recovered(partition int32) {
	s := t.shard(partition)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.recovering {
		return
	}
	items := make([]item, 0, len(s.clients))
	var sum uint64
	for c, m := range s.clients {
		items = append(items, newItem(c, m.total))
		sum += m.total
	}
	slices.SortFunc(items, itemCmp)
	tree := newTree()
	for _, it := range items {
		tree.Load(it)
	}
	s.tree, s.sum, s.recovering = tree, sum, false
	// The rebuild counts from zero, as the increments of a replay would.
	t.clients.Add(int64(len(items)))
	t.sum.Add(sum)
	t.incr.Add(sum)
	t.version.Add(1)
}

// Page returns up to limit rows in order, starting after the row at key
// after (from the first row when after is nil). A row whose total changed
// since after was handed out moves; every other row is still found exactly
// once across pages.
func (t *Index) Page(after *Key, limit int) []Row {
	return mergePages(*t.shards.Load(), after, limit)
}

// Forget drops a partition this member no longer holds: its shard is empty
// and left out of pages and counters until it is seeded again.
func (t *Index) Forget(partition int32) { t.Recovering(partition) }

// Partition is what the index holds of one partition: its clients and the
// sum of their totals, and whether it is ranked (seeded or recovered, and
// not forgotten since).
func (t *Index) Partition(partition int32) (clients int, requests uint64, ranked bool) {
	shards := *t.shards.Load()
	if int(partition) >= len(shards) || shards[partition] == nil {
		return 0, 0, false
	}
	s := shards[partition]
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recovering {
		return 0, 0, false
	}
	return len(s.clients), s.sum, true
}

// PageOf is Page over the given partitions only.
func (t *Index) PageOf(partitions []int32, after *Key, limit int) []Row {
	all := *t.shards.Load()
	shards := make([]*topShard, 0, len(partitions))
	for _, p := range partitions {
		if int(p) < len(all) {
			shards = append(shards, all[p])
		}
	}
	return mergePages(shards, after, limit)
}

func mergePages(shards []*topShard, after *Key, limit int) []Row {
	if limit <= 0 {
		return nil
	}
	parts := make([][]Row, 0, len(shards))
	for _, s := range shards {
		if s == nil {
			continue
		}
		if rows := s.page(after, limit); len(rows) > 0 {
			parts = append(parts, rows)
		}
	}
	return Merge(parts, limit)
}

// Merge merges pages each in index order into one of up to limit rows:
// k steps over the P heads.
func Merge(parts [][]Row, limit int) []Row {
	parts = slices.DeleteFunc(slices.Clone(parts), func(p []Row) bool { return len(p) == 0 })
	if len(parts) == 1 {
		return parts[0][:min(limit, len(parts[0]))]
	}
	out := make([]Row, 0, limit)
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

func (s *topShard) page(after *Key, limit int) []Row {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := min(limit, s.tree.Len())
	if n == 0 {
		return nil
	}
	rows := make([]Row, 0, n)
	collect := func(it item) bool {
		rows = append(rows, Row{Client: it.client, Total: it.total, LastSeen: s.clients[it.client].lastSeen})
		return len(rows) < limit
	}
	if after == nil {
		s.tree.Scan(collect)
		return rows
	}
	s.tree.Ascend(newItem(after.Client, after.Total), func(it item) bool {
		if it.total == after.Total && it.client == after.Client {
			return true // the cursor row itself was on the previous page
		}
		return collect(it)
	})
	return rows
}

// Clients is the number of clients in the index.
func (t *Index) Clients() int { return int(t.clients.Load()) }

// Requests is the sum of all clients' totals.
func (t *Index) Requests() uint64 { return t.sum.Load() }

// Increments is the sum of every increase of a client's total the index has
// seen, replayed history (and rebuilt partitions, from zero) included;
// differences of it taken after recovery count new calls.
func (t *Index) Increments() uint64 { return t.incr.Load() }

// Version changes whenever the index does.
func (t *Index) Version() uint64 { return t.version.Load() }

// Page is a page of clients by total calls with what the table counts in
// all: the answer of GET /usage and the dashboard's top.
type Page struct {
	Rows     []Row
	Clients  int
	Requests uint64 // sum of every client's total
}

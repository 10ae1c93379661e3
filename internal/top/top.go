// Package top keeps the clients of the usage table ranked by total calls
// and, per service, by their calls to that service (calls descending, then
// client), updated in O(log n) per change and paged in O(log n + k): the
// read side behind GET /usage (and ?service=) and the dashboard. See the
// README ("Dashboard, metrics, API document").
package top

import (
	"bytes"
	"cmp"
	"iter"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tidwall/btree"

	"github.com/inarious/inarious/codecs"
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

// Ranking is what clients are ranked by: all their calls (AllCalls, the
// zero value) or their calls to one service (ByService).
type Ranking struct {
	service   string
	byService bool
}

// AllCalls ranks clients by all their calls.
var AllCalls Ranking

// ByService ranks the clients of service by their calls to it; service is
// a name as codecs.NormalService makes it ("" is the default service).
func ByService(service string) Ranking { return Ranking{service: service, byService: true} }

// Service is the service r ranks by, and whether it ranks by one.
func (r Ranking) Service() (string, bool) { return r.service, r.byService }

// Usage is what the index takes of a client's row (Set, Seed).
type Usage struct {
	Total    uint64
	LastSeen int64 // Unix nanoseconds; 0 when the value has none
	// Services are the row's calls by service, as codecs.UsageByService
	// reads them, names unique; entries without calls are left out. The
	// index may reorder them and keeps none of their bytes.
	Services []codecs.ServiceCalls
}

// meta is what the index knows of a client besides its name.
type meta struct {
	total    uint64
	lastSeen int64
	// services are the client's calls by service, ordered by name; nil
	// when it has none. A client whose calls all went to one service, last
	// seen at its row's last call (most clients), shares that service's
	// whole list instead of a list of its own.
	services *[]serviceCalls
}

// serviceCalls is a client's calls to one service.
type serviceCalls struct {
	svc      *serviceRanking
	calls    uint64
	lastSeen int64
	whole    bool // the shared entry: calls and lastSeen are the row's
}

// of is c's calls and last call for a client of meta m.
func (c *serviceCalls) of(m meta) (uint64, int64) {
	if c.whole {
		return m.total, m.lastSeen
	}
	return c.calls, c.lastSeen
}

func (m meta) callsTo(svc *serviceRanking) (calls uint64, lastSeen int64, ok bool) {
	if m.services == nil {
		return 0, 0, false
	}
	for i := range *m.services {
		if c := &(*m.services)[i]; c.svc == svc {
			calls, lastSeen = c.of(m)
			return calls, lastSeen, true
		}
	}
	return 0, 0, false
}

// ranking is one order of a shard's clients, with the sum of what they
// are ranked by.
type ranking struct {
	tree *btree.BTreeG[item]
	sum  uint64
}

func (r *ranking) move(client string, from, to uint64, had bool) {
	if had {
		if from == to {
			return
		}
		r.tree.Delete(newItem(client, from))
	}
	r.tree.Set(newItem(client, to))
	r.sum += to - from
}

func (r *ranking) remove(client string, calls uint64) {
	r.tree.Delete(newItem(client, calls))
	r.sum -= calls
}

// serviceRanking ranks a shard's clients of one service by their calls to
// it. It exists while the shard has a client with calls to the service.
type serviceRanking struct {
	ranking
	name  string
	whole *[]serviceCalls // shared by the clients whose calls all went here
}

// Index keeps every client of the usage table ordered by total calls, and
// the clients of each service by their calls to it, updated one change at
// a time: O(log n) per change and service changed, O(log n + k) for k rows.
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
	mu sync.Mutex
	// all ranks by total calls; sum is counted while the shard is ranked.
	all ranking
	// clients finds a client's row in the trees. Map key and tree items
	// share one string, so a client costs its name once.
	clients map[string]meta
	// services are the per-service rankings, by name.
	services map[string]*serviceRanking
	// sole, when set, is the shard's one service, and every client's calls
	// all went to it (each client has its whole list): its ranking is the
	// ranking by all calls, so it keeps no tree of its own, and a write
	// costs what it cost before services. The first client of another list
	// gives it a tree, a copy-on-write copy of all's (O(1)); a rebuild
	// (Recovered, Seed) checks again.
	sole *serviceRanking
	// While the partition recovers only clients (and services, empty) is
	// kept up to date, and the Index's counters leave the shard out; the
	// trees are built and the shard counted in one sorted pass when
	// recovery ends, several times cheaper than an insert (and a lookup)
	// per changelog record.
	recovering bool
}

func newTree() *btree.BTreeG[item] {
	// Locking is the shard's: a read takes the tree and the map together.
	return btree.NewBTreeGOptions(itemLess, btree.Options{NoLocks: true})
}

func newTopShard() *topShard {
	return &topShard{all: ranking{tree: newTree()}, clients: make(map[string]meta), services: make(map[string]*serviceRanking)}
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

// Set records a client's row in the shard of its table partition.
func (t *Index) Set(partition int32, client string, u Usage) {
	s := t.shard(partition)
	s.mu.Lock()
	old, ok := s.clients[client]
	if ok && !s.recovering {
		prev, _ := s.all.tree.Delete(newItem(client, old.total))
		client = prev.client // keep the one stored copy of the name
	}
	m := meta{total: u.Total, lastSeen: u.LastSeen}
	m.services = s.setServices(client, old, m, u.Services)
	s.clients[client] = m
	if s.recovering {
		s.mu.Unlock()
		return
	}
	s.all.tree.Set(newItem(client, u.Total))
	s.all.sum += u.Total - old.total
	s.mu.Unlock()
	var added int64
	if !ok {
		added = 1
	}
	t.changed(old.total, u.Total, added)
}

// setServices moves client (of meta old, now m) in the rankings of the
// services it had and has (in, any order) and returns its new list. While
// the shard recovers only the lists are kept.
func (s *topShard) setServices(client string, old, m meta, in []codecs.ServiceCalls) *[]serviceCalls {
	// Most rows: one service, all calls, the row's last call. A client that
	// had the same one moves in its tree and keeps the shared list.
	if len(in) == 1 && in[0].Calls == m.total && m.total > 0 && in[0].LastSeen == m.lastSeen && old.services != nil &&
		len(*old.services) == 1 && (*old.services)[0].svc.name == string(in[0].Service) {
		c := &(*old.services)[0]
		if !s.recovering && c.svc != s.sole {
			calls, _ := c.of(old)
			c.svc.move(client, calls, m.total, true)
		}
		return c.svc.whole
	}
	in = slices.DeleteFunc(in, func(c codecs.ServiceCalls) bool { return c.Calls == 0 })
	if len(in) > 1 {
		slices.SortFunc(in, func(a, b codecs.ServiceCalls) int { return bytes.Compare(a.Service, b.Service) })
	}
	var was []serviceCalls
	if old.services != nil {
		was = *old.services
	}
	if own := old.services != nil && !was[0].whole; own && sameServices(was, in) && !(len(in) == 1 && in[0].Calls == m.total && in[0].LastSeen == m.lastSeen) {
		// The same services as before, not as a whole list: the client's
		// own list is updated in place, no allocation per write.
		for i := range was {
			if !s.recovering {
				was[i].svc.move(client, was[i].calls, in[i].Calls, true)
			}
			was[i].calls, was[i].lastSeen = in[i].Calls, in[i].LastSeen
		}
		return old.services
	}
	var list *[]serviceCalls
	switch {
	case len(in) == 0:
	case len(in) == 1 && in[0].Calls == m.total && in[0].LastSeen == m.lastSeen:
		list = s.service(in[0].Service, was).whole
	default:
		l := make([]serviceCalls, len(in))
		for i, c := range in {
			l[i] = serviceCalls{svc: s.service(c.Service, was), calls: c.Calls, lastSeen: c.LastSeen}
		}
		list = &l
	}
	if s.recovering {
		return list
	}
	switch {
	case s.sole != nil && list == s.sole.whole:
		return list // a new client of the sole service: still its only one
	case s.sole != nil:
		s.unalias(client, old)
	case len(s.clients) == 0 && list != nil && (*list)[0].whole:
		s.sole = (*list)[0].svc // the shard's first client
		return list
	}
	var now []serviceCalls
	if list != nil {
		now = *list
	}
	// Both lists are ordered by name: one merge pass.
	i, j := 0, 0
	for i < len(was) || j < len(now) {
		switch {
		case j == len(now) || i < len(was) && was[i].svc.name < now[j].svc.name:
			calls, _ := was[i].of(old)
			s.drop(was[i].svc, client, calls)
			i++
		case i == len(was) || now[j].svc.name < was[i].svc.name:
			calls, _ := now[j].of(m)
			now[j].svc.move(client, 0, calls, false)
			j++
		default:
			from, _ := was[i].of(old)
			to, _ := now[j].of(m)
			now[j].svc.move(client, from, to, true)
			i, j = i+1, j+1
		}
	}
	return list
}

// sameServices reports whether a client's list names the services of in
// (both ordered by name).
func sameServices(list []serviceCalls, in []codecs.ServiceCalls) bool {
	if len(list) != len(in) {
		return false
	}
	for i := range list {
		if list[i].svc.name != string(in[i].Service) {
			return false
		}
	}
	return true
}

// service is the shard's ranking of the named service, made if new; was
// (a client's list) is looked in first.
func (s *topShard) service(name []byte, was []serviceCalls) *serviceRanking {
	for _, c := range was {
		if c.svc.name == string(name) {
			return c.svc
		}
	}
	if r := s.services[string(name)]; r != nil {
		return r
	}
	r := &serviceRanking{ranking: ranking{tree: newTree()}, name: string(name)}
	r.whole = &[]serviceCalls{{svc: r, whole: true}}
	s.services[r.name] = r
	return r
}

// unalias gives the sole service a tree of its own, as it stood before
// this write of client (of meta old), which Set has taken out of all's.
func (s *topShard) unalias(client string, old meta) {
	r := s.sole
	r.tree, r.sum, s.sole = s.all.tree.Copy(), s.all.sum, nil
	if old.services != nil {
		r.tree.Set(newItem(client, old.total))
	}
}

// drop takes client out of a service's ranking, and the ranking out of the
// shard once it has no client left.
func (s *topShard) drop(r *serviceRanking, client string, calls uint64) {
	r.remove(client, calls)
	if r.tree.Len() == 0 {
		delete(s.services, r.name)
	}
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
		s.all.remove(client, old.total)
		if s.sole != nil {
			if len(s.clients) == 0 {
				delete(s.services, s.sole.name)
				s.sole = nil
			}
		} else if old.services != nil {
			for _, c := range *old.services {
				calls, _ := c.of(old)
				s.drop(c.svc, client, calls)
			}
		}
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
		oldN, oldSum = int64(len(s.clients)), s.all.sum
	}
	s.all, s.clients, s.services, s.sole, s.recovering = ranking{tree: newTree()}, make(map[string]meta), make(map[string]*serviceRanking), nil, true
	s.mu.Unlock()
	t.clients.Add(-oldN)
	t.sum.Add(-oldSum)
	t.version.Add(1)
}

// Seed loads a recovering partition's stored rows (one per client, each
// Usage valid during its step only), as goka opens its storage. Rows in
// client order, as storage iterates them, only need a stable sort by total
// to be in index order: no string comparisons. The shard is built aside
// and swapped in, so readers of the index do not wait for the storage. A
// seeded partition is ranked at once and takes the updates of the
// catch-up that follows one by one; an empty one (a cold start) stays in
// bulk mode until Recovered. Seed must come between Recovering and the
// partition's first Set, as a storage's Open does.
func (t *Index) Seed(partition int32, rows iter.Seq2[string, Usage]) {
	s := t.shard(partition)
	s.mu.Lock()
	bulk := s.recovering && len(s.clients) == 0
	s.mu.Unlock()
	if !bulk {
		for c, u := range rows {
			t.Set(partition, c, u)
		}
		return
	}
	n := newTopShard()
	n.recovering = true
	type entry struct {
		client string
		m      meta
	}
	var read []entry
	for c, u := range rows {
		m := meta{total: u.Total, lastSeen: u.LastSeen}
		m.services = n.setServices(c, meta{}, m, u.Services) // recovering: lists only
		read = append(read, entry{c, m})
	}
	n.clients = make(map[string]meta, len(read))
	clients, sum := n.rank(func(yield func(string, meta) bool) {
		for _, e := range read {
			if _, dup := n.clients[e.client]; dup {
				continue // storage keys are unique; a duplicate would corrupt the tree
			}
			n.clients[e.client] = e.m
			if !yield(e.client, e.m) {
				return
			}
		}
	}, len(read))
	if clients == 0 {
		return
	}
	s.mu.Lock()
	if !s.recovering || len(s.clients) > 0 {
		// Written meanwhile, against the contract: take the rows one by one.
		s.mu.Unlock()
		for c, m := range n.clients {
			t.Set(partition, c, m.usage())
		}
		return
	}
	s.all, s.clients, s.services, s.sole, s.recovering = n.all, n.clients, n.services, n.sole, false
	s.mu.Unlock()
	t.countIn(clients, sum)
}

// usage is what Set took to make m.
func (m meta) usage() Usage {
	u := Usage{Total: m.total, LastSeen: m.lastSeen}
	if m.services != nil {
		for i := range *m.services {
			c := &(*m.services)[i]
			calls, seen := c.of(m)
			u.Services = append(u.Services, codecs.ServiceCalls{Service: []byte(c.svc.name), Calls: calls, LastSeen: seen})
		}
	}
	return u
}

// Recovered ends a rebuild: it bulk-loads the partition's trees, sorted.
func (t *Index) Recovered(partition int32) {
	s := t.shard(partition)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.recovering {
		return
	}
	t.countIn(s.rank(maps.All(s.clients), len(s.clients)))
}

// countIn counts a ranked partition's clients and calls in. The rebuild
// counts from zero, as the increments of a replay would.
func (t *Index) countIn(clients int, sum uint64) {
	t.clients.Add(int64(clients))
	t.sum.Add(sum)
	t.incr.Add(sum)
	t.version.Add(1)
}

// rank builds a recovering shard's trees in one pass over its clients
// (the map's, or the same in another order; about hint of them) and ends
// its recovery: what the Index then counts in.
func (s *topShard) rank(clients iter.Seq2[string, meta], hint int) (n int, sum uint64) {
	items := make([]item, 0, hint)
	byService := make(map[*serviceRanking][]item, len(s.services))
	var sole *serviceRanking // while every client so far has one's whole list
	for c, m := range clients {
		items = append(items, newItem(c, m.total))
		sum += m.total
		if len(items) == 1 && m.services != nil && (*m.services)[0].whole {
			sole = (*m.services)[0].svc
		}
		if sole != nil && m.services == sole.whole {
			continue // its items are all's, if every client's are
		}
		if sole != nil {
			// Not sole after all: the clients before were its whole ones.
			byService[sole] = append(byService[sole], items[:len(items)-1]...)
			sole.sum = sum - m.total
			sole = nil
		}
		if m.services == nil {
			continue
		}
		for i := range *m.services {
			sc := &(*m.services)[i]
			calls, _ := sc.of(m)
			byService[sc.svc] = append(byService[sc.svc], newItem(c, calls))
			sc.svc.sum += calls
		}
	}
	s.all = ranking{tree: load(items), sum: sum}
	s.sole = sole
	for name, r := range s.services {
		if r == sole {
			continue
		}
		if len(byService[r]) == 0 {
			delete(s.services, name)
			continue
		}
		r.tree = load(byService[r])
	}
	s.recovering = false
	return len(items), sum
}

// load builds a tree of items. Items in client order (a warm start's, as
// storage iterates them) only need a stable sort by total to be in index
// order: integers only, no string comparisons.
func load(items []item) *btree.BTreeG[item] {
	tree := newTree()
	if slices.IsSortedFunc(items, func(a, b item) int { return strings.Compare(a.client, b.client) }) {
		// Sort positions by (total desc, position).
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
		return tree
	}
	slices.SortFunc(items, itemCmp)
	for _, it := range items {
		tree.Load(it)
	}
	return tree
}

// Page returns up to limit rows by total calls, starting after the row at
// key after (from the first row when after is nil). A row whose total
// changed since after was handed out moves; every other row is still found
// exactly once across pages.
func (t *Index) Page(after *Key, limit int) []Row {
	return mergePages(AllCalls, *t.shards.Load(), after, limit)
}

// Top is a page of r's ranking over every partition, as Page, with what it
// counts in all: for AllCalls every client and the sum of their totals;
// for a service its clients and the sum of their calls to it. Rows of a
// service's ranking carry the calls to it as Total and the last of them as
// LastSeen, and its cursor keys are positions in that order.
func (t *Index) Top(r Ranking, after *Key, limit int) Page {
	if !r.byService {
		return Page{Rows: t.Page(after, limit), Clients: t.Clients(), Requests: t.Requests()}
	}
	shards := *t.shards.Load()
	var p Page
	for i := range shards {
		if n, sum, ranked := t.Partition(r, int32(i)); ranked {
			p.Clients += n
			p.Requests += sum
		}
	}
	p.Rows = mergePages(r, shards, after, limit)
	return p
}

// Forget drops a partition this member no longer holds: its shard is empty
// and left out of pages and counters until it is seeded again.
func (t *Index) Forget(partition int32) { t.Recovering(partition) }

// Partition is what r's ranking holds of one partition: its clients and the
// sum of what they are ranked by, and whether the partition is ranked
// (seeded or recovered, and not forgotten since).
func (t *Index) Partition(r Ranking, partition int32) (clients int, requests uint64, ranked bool) {
	shards := *t.shards.Load()
	if int(partition) >= len(shards) || shards[partition] == nil {
		return 0, 0, false
	}
	s := shards[partition]
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.recovering:
		return 0, 0, false
	case !r.byService:
		return len(s.clients), s.all.sum, true
	}
	switch svc := s.services[r.service]; svc {
	case nil:
		return 0, 0, true
	case s.sole:
		return len(s.clients), s.all.sum, true
	default:
		return svc.tree.Len(), svc.sum, true
	}
}

// PageOf is a page of r's ranking over the given partitions only.
func (t *Index) PageOf(r Ranking, partitions []int32, after *Key, limit int) []Row {
	all := *t.shards.Load()
	shards := make([]*topShard, 0, len(partitions))
	for _, p := range partitions {
		if int(p) < len(all) {
			shards = append(shards, all[p])
		}
	}
	return mergePages(r, shards, after, limit)
}

func mergePages(r Ranking, shards []*topShard, after *Key, limit int) []Row {
	if limit <= 0 {
		return nil
	}
	parts := make([][]Row, 0, len(shards))
	for _, s := range shards {
		if s == nil {
			continue
		}
		if rows := s.page(r, after, limit); len(rows) > 0 {
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

func (s *topShard) page(r Ranking, after *Key, limit int) []Row {
	s.mu.Lock()
	defer s.mu.Unlock()
	tree, svc := s.all.tree, (*serviceRanking)(nil)
	if r.byService {
		switch svc = s.services[r.service]; svc {
		case nil:
			return nil
		case s.sole:
			svc = nil // all's rows, last calls included
		default:
			tree = svc.tree
		}
	}
	n := min(limit, tree.Len())
	if n == 0 {
		return nil
	}
	rows := make([]Row, 0, n)
	collect := func(it item) bool {
		row := Row{Client: it.client, Total: it.total}
		if m := s.clients[it.client]; svc == nil {
			row.LastSeen = m.lastSeen
		} else {
			_, row.LastSeen, _ = m.callsTo(svc)
		}
		rows = append(rows, row)
		return len(rows) < limit
	}
	if after == nil {
		tree.Scan(collect)
		return rows
	}
	tree.Ascend(newItem(after.Client, after.Total), func(it item) bool {
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

// Page is a page of clients of a ranking with what the ranking counts in
// all: the answer of GET /usage and the dashboard's top.
type Page struct {
	Rows     []Row
	Clients  int
	Requests uint64 // sum of what every client of the ranking is ranked by
}

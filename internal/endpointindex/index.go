// Package endpointindex keeps the summaries of the endpoints table's
// all-time rows, ranked by the orders the API lists endpoints in, as a
// storage layer over the table's partitions. The API's local view keeps one
// for the whole table; a worker serving routed reads (--query-listen) keeps
// one for the partitions it owns. See the README ("Layout", "Routed reads").
package endpointindex

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/lovoo/goka/storage"

	"github.com/inarious/inarious/internal/tablestore"
	"github.com/inarious/inarious/processors/endpoints"
)

// Order is how endpoints are listed: descending by calls, by p99 latency
// or by error rate; ties by endpoint name, ascending.
type Order string

// The orders of a list.
const (
	ByCalls     Order = "calls"
	ByP99       Order = "p99"
	ByErrorRate Order = "error_rate"
)

// Orders are the valid Orders.
var Orders = []Order{ByCalls, ByP99, ByErrorRate}

// Valid reports whether o is one of Orders.
func (o Order) Valid() bool { return slices.Contains(Orders, o) }

// Cursor is the cursor that continues a list in order o after s.
func (o Order) Cursor(s endpoints.Summary) Cursor {
	return Cursor{Value: o.Value(s), Endpoint: s.Endpoint}
}

// Value is the summary's value that o sorts by.
func (o Order) Value(s endpoints.Summary) float64 {
	switch o {
	case ByP99:
		return s.Latency.P99
	case ByErrorRate:
		return s.ErrorRate
	}
	return float64(s.Calls)
}

// Cursor is the last row of a page: the next page starts after it.
type Cursor struct {
	Value    float64
	Endpoint string
}

// Before reports whether the row (value, endpoint) comes before c in a
// descending list.
func (c Cursor) Before(value float64, endpoint string) bool {
	return value > c.Value || value == c.Value && endpoint < c.Endpoint
}

// Page is one page of a list of endpoints.
type Page struct {
	Rows []endpoints.Summary
	// Endpoints is how many endpoints the listed partitions hold.
	Endpoints int
}

// Index holds the summary of every all-time row of the endpoints table
// in the partitions it is layered over, for the lists. A row is summarized when it is written (an
// HLL estimate costs up to ~0.5 ms, too much per request); during a
// partition's recovery only its latest value per key is kept, and
// summarized once the partition is recovered, so a changelog replaying
// many versions of a row costs one summary.
type Index struct {
	mu sync.Mutex
	// rows: per partition, the summaries by endpoint (an endpoint lives in
	// one partition, so partitions never share one).
	rows map[int32]map[string]*endpoints.Summary
	// pending: per recovering partition, the latest value per endpoint.
	pending map[int32]map[string][]byte
	count   int
	// sorted caches each order's list until the next change.
	sorted map[Order][]ranked
}

// ranked is a summary with the value its list sorts it by; the summary by
// pointer (stored ones never change), so sorting moves little.
type ranked struct {
	value     float64
	partition int32
	*endpoints.Summary
}

// New is an empty index; Layer fills it.
func New() *Index {
	return &Index{rows: map[int32]map[string]*endpoints.Summary{}, pending: map[int32]map[string][]byte{},
		sorted: map[Order][]ranked{}}
}

// summarize decodes an all-time row's value; ok is false for a value
// nobody can read, which is not listed.
func summarize(endpoint string, value []byte) (endpoints.Summary, bool) {
	r, err := endpoints.DecodeRow(value)
	if err != nil {
		return endpoints.Summary{}, false
	}
	return endpoints.Summarize(endpoint, r), true
}

func (x *Index) changed() { clear(x.sorted) }

// recovering starts partition p's recovery with what its local storage holds.
func (x *Index) recovering(p int32, held map[string][]byte) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.dropLocked(p)
	x.pending[p] = held
}

// set records endpoint's new value in partition p.
func (x *Index) set(p int32, endpoint string, value []byte) {
	x.mu.Lock()
	if pend, ok := x.pending[p]; ok {
		pend[endpoint] = value
		x.mu.Unlock()
		return
	}
	x.mu.Unlock()
	// Summarized outside the lock: readers do not wait for the estimate.
	s, ok := summarize(endpoint, value)
	x.mu.Lock()
	defer x.mu.Unlock()
	if !ok {
		x.deleteLocked(p, endpoint)
		return
	}
	part := x.rows[p]
	if part == nil {
		part = map[string]*endpoints.Summary{}
		x.rows[p] = part
	}
	if _, had := part[endpoint]; !had {
		x.count++
	}
	part[endpoint] = &s
	x.changed()
}

func (x *Index) delete(p int32, endpoint string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if pend, ok := x.pending[p]; ok {
		delete(pend, endpoint)
		return
	}
	x.deleteLocked(p, endpoint)
}

func (x *Index) deleteLocked(p int32, endpoint string) {
	if _, had := x.rows[p][endpoint]; had {
		delete(x.rows[p], endpoint)
		x.count--
		x.changed()
	}
}

// recovered summarizes what partition p's recovery left and lists it.
func (x *Index) recovered(p int32) {
	x.mu.Lock()
	pend, ok := x.pending[p]
	x.mu.Unlock()
	if !ok {
		return
	}
	part := make(map[string]*endpoints.Summary, len(pend))
	// Sets wait for this partition's recovery to end, so pend is stable.
	for e, v := range pend {
		if s, ok := summarize(e, v); ok {
			part[e] = &s
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.pending, p)
	x.dropLocked(p)
	x.rows[p] = part
	x.count += len(part)
	x.changed()
}

// forget drops partition p (its storage closed).
func (x *Index) forget(p int32) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.pending, p)
	x.dropLocked(p)
}

func (x *Index) dropLocked(p int32) {
	if part, ok := x.rows[p]; ok {
		x.count -= len(part)
		delete(x.rows, p)
		x.changed()
	}
}

// Get is endpoint's summary, if a listed partition holds it.
func (x *Index) Get(endpoint string) (endpoints.Summary, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, part := range x.rows {
		if s, ok := part[endpoint]; ok {
			return *s, true
		}
	}
	return endpoints.Summary{}, false
}

// Partition reports how many endpoints partition p holds, and whether it
// is listed: open and recovered.
func (x *Index) Partition(p int32) (n int, listed bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	part, ok := x.rows[p]
	_, pending := x.pending[p]
	return len(part), ok && !pending
}

// Page lists up to limit endpoints in order after the cursor: the list is
// sorted once per change (O(n log n)), a page is then O(log n + limit).
func (x *Index) Page(order Order, after *Cursor, limit int) Page {
	return x.PageOf(nil, order, after, limit)
}

// PageOf is Page of the endpoints of partitions parts only (all when nil),
// Endpoints counting those partitions' endpoints. A worker lists the
// partitions the API asks it for, normally all it holds, so the rows of
// others are seldom skipped.
func (x *Index) PageOf(parts []int32, order Order, after *Cursor, limit int) Page {
	x.mu.Lock()
	defer x.mu.Unlock()
	list, ok := x.sorted[order]
	if !ok {
		list = make([]ranked, 0, x.count)
		for p, part := range x.rows {
			for _, s := range part {
				list = append(list, ranked{value: order.Value(*s), partition: p, Summary: s})
			}
		}
		slices.SortFunc(list, func(a, b ranked) int {
			if c := cmp.Compare(b.value, a.value); c != 0 {
				return c
			}
			return cmp.Compare(a.Endpoint, b.Endpoint)
		})
		x.sorted[order] = list
	}
	i := 0
	if after != nil {
		c := *after
		i = sort.Search(len(list), func(i int) bool {
			r := list[i]
			return !c.Before(r.value, r.Endpoint) && (r.value != c.Value || r.Endpoint != c.Endpoint)
		})
	}
	page := Page{Rows: make([]endpoints.Summary, 0, max(min(limit, len(list)-i), 0)), Endpoints: x.count}
	if parts != nil {
		page.Endpoints = 0
		for _, p := range parts {
			page.Endpoints += len(x.rows[p])
		}
	}
	for ; i < len(list) && len(page.Rows) < limit; i++ {
		if parts == nil || slices.Contains(parts, list[i].partition) {
			page.Rows = append(page.Rows, *list[i].Summary)
		}
	}
	return page
}

// Layer keeps x up to date with the writes to topic's storages (the
// endpoints table's), as top.Indexing does for the usage table: seeded
// from local storage when a partition opens, listed once it is recovered,
// forgotten when it closes.
func (x *Index) Layer(topic string) tablestore.Layer {
	return func(b storage.Builder) storage.Builder {
		return func(t string, partition int32) (storage.Storage, error) {
			st, err := b(t, partition)
			if err != nil || t != topic {
				return st, err
			}
			return &indexedEndpoints{Storage: st, idx: x, partition: partition}, nil
		}
	}
}

type indexedEndpoints struct {
	storage.Storage
	idx       *Index
	partition int32
}

// Open loads the all-time rows local storage holds (a warm start replays
// nothing), skipping each endpoint's bucket rows with one seek.
func (s *indexedEndpoints) Open() error {
	if err := s.Storage.Open(); err != nil {
		return err
	}
	it, err := s.Storage.Iterator()
	if err != nil {
		return fmt.Errorf("endpoints index: %w", err)
	}
	defer it.Release()
	held := map[string][]byte{}
	for ok := it.Next(); ok; {
		key := it.Key()
		ep := endpoints.PartitionKey(key)
		if len(ep) == len(key) {
			v, err := it.Value()
			if err != nil {
				return fmt.Errorf("endpoints index: read %q: %w", key, err)
			}
			held[string(key)] = slices.Clone(v)
		}
		// Bucket keys are the endpoint, a NUL and more: all below ep+"\x01".
		ok = it.Seek(append(slices.Clip(slices.Clone(ep)), 1))
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("endpoints index: %w", err)
	}
	s.idx.recovering(s.partition, held)
	return nil
}

func (s *indexedEndpoints) Set(key string, value []byte) error {
	if err := s.Storage.Set(key, value); err != nil {
		return err
	}
	if isAllTime(key) {
		s.idx.set(s.partition, key, value)
	}
	return nil
}

func (s *indexedEndpoints) Delete(key string) error {
	if err := s.Storage.Delete(key); err != nil {
		return err
	}
	if isAllTime(key) {
		s.idx.delete(s.partition, key)
	}
	return nil
}

// MarkRecovered: goka's signal that the partition caught up; it is listed
// before goka reports it running.
func (s *indexedEndpoints) MarkRecovered() error {
	s.idx.recovered(s.partition)
	return s.Storage.MarkRecovered()
}

func (s *indexedEndpoints) Close() error {
	s.idx.forget(s.partition)
	return s.Storage.Close()
}

// isAllTime: an all-time row's key is the endpoint alone; bucket keys hold
// a NUL.
func isAllTime(key string) bool {
	for i := 0; i < len(key); i++ {
		if key[i] == 0 {
			return false
		}
	}
	return key != ""
}

package views

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/lovoo/goka/storage"

	"github.com/inarious/inarious/processors/endpoints"
)

// endpointIndex holds the summary of every all-time row of the endpoints
// table, for Endpoints' lists. A row is summarized when it is written (an
// HLL estimate costs up to ~0.5 ms, too much per request); during a
// partition's recovery only its latest value per key is kept, and
// summarized once the partition is recovered, so a changelog replaying
// many versions of a row costs one summary.
type endpointIndex struct {
	mu sync.Mutex
	// rows: per partition, the summaries by endpoint (an endpoint lives in
	// one partition, so partitions never share one).
	rows map[int32]map[string]*endpoints.Summary
	// pending: per recovering partition, the latest value per endpoint.
	pending map[int32]map[string][]byte
	count   int
	// sorted caches each order's list until the next change.
	sorted map[EndpointOrder][]ranked
}

// ranked is a summary with the value its list sorts it by; the summary by
// pointer (stored ones never change), so sorting moves little.
type ranked struct {
	value float64
	*endpoints.Summary
}

func newEndpointIndex() *endpointIndex {
	return &endpointIndex{rows: map[int32]map[string]*endpoints.Summary{}, pending: map[int32]map[string][]byte{},
		sorted: map[EndpointOrder][]ranked{}}
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

func (x *endpointIndex) changed() { clear(x.sorted) }

// recovering starts partition p's recovery with what its local storage holds.
func (x *endpointIndex) recovering(p int32, held map[string][]byte) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.dropLocked(p)
	x.pending[p] = held
}

// set records endpoint's new value in partition p.
func (x *endpointIndex) set(p int32, endpoint string, value []byte) {
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

func (x *endpointIndex) delete(p int32, endpoint string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if pend, ok := x.pending[p]; ok {
		delete(pend, endpoint)
		return
	}
	x.deleteLocked(p, endpoint)
}

func (x *endpointIndex) deleteLocked(p int32, endpoint string) {
	if _, had := x.rows[p][endpoint]; had {
		delete(x.rows[p], endpoint)
		x.count--
		x.changed()
	}
}

// recovered summarizes what partition p's recovery left and lists it.
func (x *endpointIndex) recovered(p int32) {
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
func (x *endpointIndex) forget(p int32) {
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.pending, p)
	x.dropLocked(p)
}

func (x *endpointIndex) dropLocked(p int32) {
	if part, ok := x.rows[p]; ok {
		x.count -= len(part)
		delete(x.rows, p)
		x.changed()
	}
}

func (x *endpointIndex) get(endpoint string) (endpoints.Summary, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, part := range x.rows {
		if s, ok := part[endpoint]; ok {
			return *s, true
		}
	}
	return endpoints.Summary{}, false
}

// page lists up to limit endpoints in order after the cursor: the list is
// sorted once per change (O(n log n)), a page is then O(log n + limit).
func (x *endpointIndex) page(order EndpointOrder, after *EndpointCursor, limit int) EndpointPage {
	x.mu.Lock()
	defer x.mu.Unlock()
	list, ok := x.sorted[order]
	if !ok {
		list = make([]ranked, 0, x.count)
		for _, part := range x.rows {
			for _, s := range part {
				list = append(list, ranked{value: order.Value(*s), Summary: s})
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
	n := max(min(limit, len(list)-i), 0)
	rows := make([]endpoints.Summary, n)
	for j := range n {
		rows[j] = *list[i+j].Summary
	}
	return EndpointPage{Rows: rows, Endpoints: x.count}
}

// indexing is the storage layer that keeps x up to date with the writes to
// topic's storages, as top.Indexing does for the usage table.
func (x *endpointIndex) indexing(topic string) func(storage.Builder) storage.Builder {
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
	idx       *endpointIndex
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

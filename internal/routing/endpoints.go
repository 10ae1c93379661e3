package routing

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/internal/endpointindex"
	"github.com/inarious/inarious/internal/ownership"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/processors/endpoints"
	"github.com/inarious/inarious/views"
)

// The endpoints group's worker reads. Rows travel, not summaries, where the
// API merges or summarizes them (one endpoint, its buckets): a range merges
// the buckets' sketches, so both modes summarize the same rows alike
// (views.EndpointAnswers). Lists travel as summaries, the index's.
const (
	// EndpointPath: GET ?endpoint= answers the all-time row (RowCodec), 404
	// when there is none.
	EndpointPath = "/query/endpoint"
	// EndpointBucketsPath: GET ?endpoint=&step=<seconds>&from=&to=<unix
	// seconds> answers the bucket rows of step with calls whose start lies
	// in [from, to] as an EndpointRows.
	EndpointBucketsPath = "/query/endpoint/buckets"
	// EndpointsPath: GET ?partitions=0,3&order=&limit=k[&after_value=&
	// after_endpoint=] answers the first k endpoints of those partitions in
	// order, after the cursor if given, as an EndpointsPage.
	EndpointsPath = "/query/endpoints"
)

// maxEndpointLen bounds an endpoint's name, as the API's routes do.
const maxEndpointLen = 512

// EndpointRows is a worker's answer to EndpointBucketsPath: rows encoded
// with endpoints.RowCodec, oldest first, Step and Start set.
type EndpointRows struct {
	Rows [][]byte `json:"rows"`
}

// EndpointsPage is a worker's answer to EndpointsPath: rows of exactly
// Partitions, Endpoints counting theirs.
type EndpointsPage struct {
	Partitions []int32             `json:"partitions"`
	Endpoints  int                 `json:"endpoints"`
	Rows       []endpoints.Summary `json:"rows"`
}

// EndpointTable is the endpoints table's local storage of the partitions a
// member holds (endpoints.Processor).
type EndpointTable interface {
	// ScanTable calls fn with each row of partition whose key lies in
	// [start, limit); held is false when the partition is not open here.
	ScanTable(partition int32, start, limit string, fn func(key string, value []byte) error) (held bool, err error)
}

// EndpointWorker serves reads of the endpoints table from the partitions
// the local member owns and has recovered, under the same read-time checks
// and refusals as Worker: 421 for a partition not owned, 503 while the
// processor is not running.
type EndpointWorker struct {
	member
	table EndpointTable
	index *endpointindex.Index // the member's own partitions
}

// NewEndpointWorker serves the endpoints table of a group whose input has
// n partitions: rows from table, lists from idx, which the member's
// storage keeps for its own partitions (endpoints.WithStorageLayer).
func NewEndpointWorker(n int, table EndpointTable, idx *endpointindex.Index, opts ...Option) *EndpointWorker {
	return &EndpointWorker{member: newMember(n, opts), table: table, index: idx}
}

// Register adds EndpointPath, EndpointBucketsPath and EndpointsPath to mux.
func (w *EndpointWorker) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+EndpointPath, w.serveRow)
	mux.HandleFunc("GET "+EndpointBucketsPath, w.serveBuckets)
	mux.HandleFunc("GET "+EndpointsPath, w.serveList)
}

// Handler serves what Register adds.
func (w *EndpointWorker) Handler() http.Handler {
	mux := http.NewServeMux()
	w.Register(mux)
	return mux
}

// endpointParam is the endpoint asked about, with its partition named in
// the answer, or false once it answered 400.
func (w *EndpointWorker) endpointParam(rw http.ResponseWriter, r *http.Request) (string, int32, bool) {
	e, ok := keyParam(rw, r, "endpoint", maxEndpointLen)
	if !ok {
		return "", 0, false
	}
	p := endpoints.PartitionOf(e, w.partitions)
	rw.Header().Set(HeaderPartition, strconv.Itoa(int(p)))
	return e, p, true
}

func (w *EndpointWorker) serveRow(rw http.ResponseWriter, r *http.Request) {
	e, _, ok := w.endpointParam(rw, r)
	if !ok {
		return
	}
	val, err := w.read(e)
	if w.refuse(rw, err) {
		return
	}
	row, _ := val.(*endpoints.Row)
	if row == nil {
		rw.WriteHeader(http.StatusNotFound)
		return
	}
	b, err := endpoints.RowCodec{}.Encode(row)
	if err != nil {
		w.log.Error("encoding an endpoints row", "endpoint", e, "err", err)
		http.Error(rw, "cannot encode the row", http.StatusInternalServerError)
		return
	}
	rw.Header().Set("Content-Type", ContentType)
	_, _ = rw.Write(b)
}

func (w *EndpointWorker) serveBuckets(rw http.ResponseWriter, r *http.Request) {
	e, p, ok := w.endpointParam(rw, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	sec, err1 := strconv.ParseInt(q.Get("step"), 10, 64)
	from, err2 := strconv.ParseInt(q.Get("from"), 10, 64)
	to, err3 := strconv.ParseInt(q.Get("to"), 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil || sec <= 0 || from < 0 || to < from {
		http.Error(rw, "step (seconds), from and to (unix seconds, from <= to) are required", http.StatusBadRequest)
		return
	}
	step := time.Duration(sec) * time.Second
	start, limit := endpoints.BucketRange(e, step, from, to)
	out := EndpointRows{Rows: [][]byte{}}
	// Running, with no rebalance begun during the read, the open storages
	// are exactly this member's partitions.
	err := w.guarded(func(*goka.Processor) error {
		held, err := w.table.ScanTable(p, start, limit, func(key string, v []byte) error {
			st, ok := endpoints.BucketIn(key, e, step, from, to)
			if !ok {
				return nil
			}
			row, err := endpoints.DecodeRow(v)
			if err != nil {
				return fmt.Errorf("decode %q: %w", key, err)
			}
			if row.Calls == 0 {
				return nil
			}
			row.Step, row.Start = step, time.Unix(st, 0).UTC()
			b, err := endpoints.RowCodec{}.Encode(row)
			out.Rows = append(out.Rows, b)
			return err
		})
		if err == nil && !held {
			err = fmt.Errorf("partition %d: %w", p, errNotOwned)
		}
		return err
	})
	if w.refuse(rw, err) {
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(rw).Encode(out)
}

func (w *EndpointWorker) serveList(rw http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	parts, err := parsePartitions(q.Get("partitions"), w.partitions)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	order := endpointindex.Order(q.Get("order"))
	if !order.Valid() {
		http.Error(rw, "order must be calls, p99 or error_rate", http.StatusBadRequest)
		return
	}
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit < 1 || limit > maxTopLimit {
		http.Error(rw, fmt.Sprintf("limit must be an integer from 1 to %d", maxTopLimit), http.StatusBadRequest)
		return
	}
	var after *endpointindex.Cursor
	if q.Has("after_value") {
		v, err := strconv.ParseFloat(q.Get("after_value"), 64)
		if err != nil || math.IsNaN(v) {
			http.Error(rw, "after_value must be a number", http.StatusBadRequest)
			return
		}
		after = &endpointindex.Cursor{Value: v, Endpoint: q.Get("after_endpoint")}
	}
	page := EndpointsPage{Partitions: parts}
	// As serveTop: a listed partition is an owned one while running.
	err = w.guarded(func(*goka.Processor) error {
		for _, p := range parts {
			if _, listed := w.index.Partition(p); !listed {
				return fmt.Errorf("partition %d: %w", p, errNotOwned)
			}
		}
		pg := w.index.PageOf(parts, order, after, limit)
		page.Endpoints, page.Rows = pg.Endpoints, pg.Rows
		return nil
	})
	if w.refuse(rw, err) {
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(rw).Encode(page)
}

// EndpointReader reads the endpoints table from the workers owning each
// endpoint's partition (a views.EndpointReader): one endpoint's rows from
// its owner, summarized here as a local view summarizes them; lists merged
// from every owner's best.
type EndpointReader struct {
	forwarder
	views.EndpointAnswers
}

var _ views.EndpointReader = (*EndpointReader)(nil)

// NewEndpointReader reads through owners (of the endpoints group on its
// partials topic); win must be the workers' windowing.
func NewEndpointReader(owners Owners, win windows.Config, opts ...Option) *EndpointReader {
	r := &EndpointReader{forwarder: newForwarder(owners, "endpoints", endpoints.PartitionOf, opts)}
	r.EndpointAnswers = views.EndpointAnswers{Rows: r, Config: win, Now: time.Now}
	return r
}

// Row is the row of key (nil if none), as its partition's owner answers it.
func (r *EndpointReader) Row(key string) (*endpoints.Row, error) {
	var row *endpoints.Row
	err := r.forward(key, EndpointPath, url.Values{"endpoint": {key}}, func(status int, body []byte) (bool, error) {
		switch status {
		case http.StatusOK:
			v, err := endpoints.DecodeRow(body)
			if err != nil {
				return false, err
			}
			r.ok.Add(1)
			row = v
			return true, nil
		case http.StatusNotFound:
			r.notFound.Add(1)
			return true, nil
		}
		return false, nil
	})
	return row, err
}

// Buckets are endpoint's bucket rows of step with calls whose start lies in
// [fromUnix, toUnix], as its partition's owner answers them.
func (r *EndpointReader) Buckets(endpoint string, step time.Duration, fromUnix, toUnix int64) ([]*endpoints.Row, error) {
	q := url.Values{
		"endpoint": {endpoint},
		"step":     {strconv.FormatInt(int64(step/time.Second), 10)},
		"from":     {strconv.FormatInt(fromUnix, 10)},
		"to":       {strconv.FormatInt(toUnix, 10)},
	}
	var rows []*endpoints.Row
	err := r.forward(endpoint, EndpointBucketsPath, q, func(status int, body []byte) (bool, error) {
		if status != http.StatusOK {
			return false, nil
		}
		var ans EndpointRows
		if err := json.Unmarshal(body, &ans); err != nil {
			return false, err
		}
		rows = make([]*endpoints.Row, 0, len(ans.Rows))
		for _, b := range ans.Rows {
			row, err := endpoints.DecodeRow(b)
			if err != nil {
				return false, err
			}
			rows = append(rows, row)
		}
		r.ok.Add(1)
		return true, nil
	})
	return rows, err
}

// Endpoints asks every owner for the first limit endpoints of its
// partitions after the cursor and merges them; Endpoints is the sum of the
// owners' counts, each partition counted once. Any refusal retries the
// whole page for Window, then gives up with *Unavailable.
func (r *EndpointReader) Endpoints(order views.EndpointOrder, after *views.EndpointCursor, limit int) (views.EndpointPage, error) {
	if !order.Valid() {
		return views.EndpointPage{}, &windows.QueryError{Msg: fmt.Sprintf("order %q is not one of calls, p99, error_rate", order)}
	}
	q := url.Values{"order": {string(order)}, "limit": {strconv.Itoa(max(min(limit, maxTopLimit), 1))}}
	if after != nil {
		q.Set("after_value", strconv.FormatFloat(after.Value, 'g', -1, 64))
		q.Set("after_endpoint", after.Endpoint)
	}
	var out views.EndpointPage
	err := r.retry("not every endpoints partition's owner answered (the endpoints group is rebalancing); retry later",
		func(m *ownership.Map) (bool, error) {
			var (
				pages [][]endpoints.Summary
				total int
			)
			err := r.askOwners(m, EndpointsPath, q, func(body []byte) ([]int32, error) {
				var page EndpointsPage
				if err := json.Unmarshal(body, &page); err != nil {
					return nil, err
				}
				pages = append(pages, page.Rows)
				total += page.Endpoints
				return page.Partitions, nil
			})
			if err != nil {
				return false, err
			}
			r.ok.Add(1)
			out = views.EndpointPage{Rows: MergeEndpoints(order, pages, limit), Endpoints: total}
			return true, nil
		})
	return out, err
}

// MergeEndpoints merges pages, each in order (descending value, ties by
// endpoint ascending), into the first limit rows of their union: k heads,
// the first of them taken at each step.
func MergeEndpoints(order views.EndpointOrder, pages [][]endpoints.Summary, limit int) []endpoints.Summary {
	n := 0
	for _, p := range pages {
		n += len(p)
	}
	out := make([]endpoints.Summary, 0, max(min(n, limit), 0))
	heads := make([]int, len(pages))
	for len(out) < limit {
		best := -1
		for i, p := range pages {
			if heads[i] >= len(p) {
				continue
			}
			s := p[heads[i]]
			if best < 0 || order.Cursor(pages[best][heads[best]]).Before(order.Value(s), s.Endpoint) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		out = append(out, pages[best][heads[best]])
		heads[best]++
	}
	return out
}

package routing

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
	"github.com/lovoo/goka/tester"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/endpointindex"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/processors/endpoints"
	"github.com/inarious/inarious/views"
)

// fakeTable is a member's local storage of the endpoints table: the
// partitions it holds, by key.
type fakeTable map[int32]map[string][]byte

func (f fakeTable) ScanTable(p int32, start, limit string, fn func(string, []byte) error) (bool, error) {
	part, ok := f[p]
	if !ok {
		return false, nil
	}
	keys := make([]string, 0, len(part))
	for k := range part {
		if k >= start && k < limit {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := fn(k, part[k]); err != nil {
			return true, err
		}
	}
	return true, nil
}

func encodeRow(t testing.TB, r *endpoints.Row) []byte {
	t.Helper()
	b, err := endpoints.RowCodec{}.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// indexOf lists rows (by partition, keyed as the table is) in an index fed
// through its storage layer, as a member's storage feeds it.
func indexOf(t testing.TB, rows fakeTable) *endpointindex.Index {
	t.Helper()
	idx := endpointindex.New()
	build := idx.Layer("table")(func(string, int32) (storage.Storage, error) { return storage.NewMemory(), nil })
	for p, part := range rows {
		st, err := build("table", p)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Open(); err != nil {
			t.Fatal(err)
		}
		for k, v := range part {
			if err := st.Set(k, v); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.MarkRecovered(); err != nil {
			t.Fatal(err)
		}
	}
	return idx
}

// endpointWorker is an EndpointWorker over a running (goka tester)
// processor, holding and listing the partitions of rows; the processor's
// table has a row of calls per key consumed from "in".
func endpointWorker(t *testing.T, rows fakeTable) (*EndpointWorker, *httptest.Server, *tester.Tester) {
	t.Helper()
	w := NewEndpointWorker(parts, rows, indexOf(t, rows))
	gkt := tester.New(t)
	graph := goka.DefineGroup("g", goka.Input("in", new(codec.String), func(ctx goka.Context, _ any) {
		r, _ := ctx.Value().(*endpoints.Row)
		if r == nil {
			r = endpoints.NewRow()
		}
		r.Calls++
		r.Status[codecs.Class2xx]++
		ctx.SetValue(r)
	}), goka.Persist(endpoints.RowCodec{}))
	proc, err := goka.NewProcessor(nil, graph, goka.WithTester(gkt))
	if err != nil {
		t.Fatal(err)
	}
	w.SetProcessor(proc)
	testutil.RunProcessor(t, proc)
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(srv.Close)
	return w, srv, gkt
}

// spreadEndpoints makes n all-time rows with many ties in every order,
// placed in their partitions.
func spreadEndpoints(t testing.TB, n int) fakeTable {
	rows := fakeTable{}
	for i := range n {
		e := fmt.Sprintf("GET /e/%04d", i)
		r := endpoints.NewRow()
		r.Calls = uint64(1 + i%13)
		r.Status[codecs.Class2xx], r.Status[codecs.Class5xx] = uint64(1+i%5), uint64(i%3)
		r.Latency.Add(int64(1+i%9) * 1000)
		p := endpoints.PartitionOf(e, parts)
		if rows[p] == nil {
			rows[p] = map[string][]byte{}
		}
		rows[p][e] = encodeRow(t, r)
	}
	return rows
}

func only(rows fakeTable, ps ...int32) fakeTable {
	out := fakeTable{}
	for _, p := range ps {
		out[p] = rows[p]
	}
	return out
}

func newTestEndpointReader(o Owners) *EndpointReader {
	r := NewEndpointReader(o, testWindows)
	r.Window = 300 * time.Millisecond
	return r
}

func summary(e string, calls uint64) endpoints.Summary {
	return endpoints.Summary{Endpoint: e, Calls: calls}
}

func names(rows []endpoints.Summary) []string {
	out := make([]string, len(rows))
	for i, s := range rows {
		out[i] = fmt.Sprintf("%s=%d", s.Endpoint, s.Calls)
	}
	return out
}

// The merge takes the owners' heads in list order: descending value, ties
// by endpoint ascending, across pages, up to limit.
func TestMergeEndpointsTiesAndLimit(t *testing.T) {
	a := []endpoints.Summary{summary("b", 5), summary("a", 3), summary("c", 3)}
	b := []endpoints.Summary{summary("a", 5), summary("b", 3), summary("z", 1)}
	want := []string{"a=5", "b=5", "a=3", "b=3", "c=3", "z=1"}
	for limit := range 8 {
		got := names(MergeEndpoints(views.ByCalls, [][]endpoints.Summary{a, nil, b}, limit))
		if w := want[:min(limit, len(want))]; !slices.Equal(got, w) {
			t.Errorf("limit %d: %v, want %v", limit, got, w)
		}
	}
	if got := MergeEndpoints(views.ByCalls, nil, 5); len(got) != 0 {
		t.Errorf("no pages: %v", got)
	}
}

// Pages merged from two workers, each listing its own partitions, page
// through every endpoint once, in the order a single index of the whole
// table lists them, in every order; the count is the table's.
func TestEndpointReaderPagesMergeTheOwners(t *testing.T) {
	all := spreadEndpoints(t, 300)
	_, a, _ := endpointWorker(t, only(all, 0, 1))
	_, b, _ := endpointWorker(t, only(all, 2, 3))
	r := newTestEndpointReader(newOwners(ownersOf(map[int32]string{0: addr(a), 1: addr(a), 2: addr(b), 3: addr(b)})))
	defer r.Close()
	whole := indexOf(t, all)
	for _, order := range views.Orders {
		want := whole.Page(order, nil, 1000).Rows
		var got []endpoints.Summary
		var after *views.EndpointCursor
		for range len(want) {
			page, err := r.Endpoints(order, after, 7)
			if err != nil {
				t.Fatal(err)
			}
			if page.Endpoints != 300 {
				t.Fatalf("%s: %d endpoints, want 300", order, page.Endpoints)
			}
			if len(page.Rows) == 0 {
				break
			}
			got = append(got, page.Rows...)
			c := order.Cursor(page.Rows[len(page.Rows)-1])
			after = &c
		}
		if !slices.EqualFunc(got, want, func(x, y endpoints.Summary) bool { return x.Endpoint == y.Endpoint && order.Value(x) == order.Value(y) }) {
			t.Errorf("%s: paged %d rows, want %d in the index's order; first got %v want %v", order, len(got), len(want),
				names(got[:min(5, len(got))]), names(want[:5]))
		}
	}
	if _, err := r.Endpoints("slowest", nil, 5); !errors.As(err, new(*windows.QueryError)) {
		t.Errorf("unknown order: %v, want a query error", err)
	}
}

// A map naming a worker for partitions it does not list gets 503 after the
// window, never a merge of the wrong owner's page.
func TestEndpointReaderNeverMergesAWrongOwner(t *testing.T) {
	all := spreadEndpoints(t, 40)
	wa, a, _ := endpointWorker(t, only(all, 0, 1))
	_, b, _ := endpointWorker(t, only(all, 2, 3))
	r := newTestEndpointReader(newOwners(ownersOf(map[int32]string{0: addr(a), 1: addr(a), 2: addr(a), 3: addr(b)})))
	defer r.Close()
	page, err := r.Endpoints(views.ByCalls, nil, 10)
	var ua *Unavailable
	if !errors.As(err, &ua) || page.Rows != nil || ua.Status() != http.StatusServiceUnavailable || !strings.HasPrefix(err.Error(), "endpoints unavailable") {
		t.Fatalf("page with a wrong owner = %v, %v; want *Unavailable", page.Rows, err)
	}
	if wa.Refused() == 0 {
		t.Error("the worker asked for a partition it does not list did not refuse")
	}
}

// One endpoint's row and buckets come from its owner as rows, summarized
// and merged by the reader: a series of the buckets with calls, a range
// whose sketches merged.
func TestEndpointReaderRowAndBuckets(t *testing.T) {
	const e = "GET /healthz"
	p := endpoints.PartitionOf(e, parts)
	now := time.Now().UTC()
	cur := now.Truncate(time.Minute)
	table := fakeTable{p: {}}
	var wantCalls uint64
	for i, calls := range []uint64{3, 0, 4} {
		start := cur.Add(-time.Duration(i) * time.Minute)
		r := endpoints.NewRow()
		r.Calls = calls
		r.Latency.Add(int64(1000 * (i + 1)))
		table[p][endpoints.BucketKey(e, time.Minute, start.Unix())] = encodeRow(t, r)
		wantCalls += calls
	}
	// Another endpoint's bucket and another step in the same partition.
	table[p][endpoints.BucketKey(e+"x", time.Minute, cur.Unix())] = encodeRow(t, &endpoints.Row{Calls: 9})
	table[p][endpoints.BucketKey(e, time.Hour, cur.Unix())] = encodeRow(t, &endpoints.Row{Calls: 9})
	_, srv, gkt := endpointWorker(t, table)
	r := newTestEndpointReader(newOwners(allOn(addr(srv))))
	defer r.Close()

	if _, ok, err := r.Endpoint(e); ok || err != nil {
		t.Fatalf("before any call: found %v, err %v; want not found", ok, err)
	}
	gkt.Consume("in", e, "x")
	gkt.Consume("in", e, "x")
	s, ok, err := r.Endpoint(e)
	if err != nil || !ok || s.Calls != 2 || s.Endpoint != e || s.Status[codecs.Class2xx] != 2 {
		t.Fatalf("Endpoint = %+v, %v, %v; want 2 calls", s, ok, err)
	}

	series, err := r.EndpointSeries(e, time.Minute, cur.Add(-10*time.Minute), now)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range series {
		got = append(got, fmt.Sprintf("%s:%d", b.Start.Sub(cur), b.Calls))
	}
	if want := []string{"-2m0s:4", "0s:3"}; !slices.Equal(got, want) {
		t.Errorf("series %v, want %v (buckets without calls left out)", got, want)
	}
	w, err := r.EndpointRange(e, 10*time.Minute)
	if err != nil || w.Calls != wantCalls || w.Latency.Timed != 2 || w.Step != time.Minute {
		t.Errorf("range = %+v, %v; want %d calls, 2 timed (the merged sketches of the buckets with calls)", w, err, wantCalls)
	}
	if _, err := r.EndpointSeries(e, 2*time.Minute, cur.Add(-10*time.Minute), now); !errors.As(err, new(*windows.QueryError)) {
		t.Errorf("a step not kept: %v, want a query error", err)
	}
}

func TestEndpointWorkerRefusals(t *testing.T) {
	all := spreadEndpoints(t, 20)
	stopped := NewEndpointWorker(parts, all, indexOf(t, all)).Handler()
	_, running, _ := endpointWorker(t, only(all, 1))
	var inOne, inOther string
	for e := range all[1] {
		inOne = e
	}
	for e := range all[2] {
		inOther = e
	}
	ep := url.QueryEscape
	for name, c := range map[string]struct {
		h    http.Handler
		path string
		want int
	}{
		"row, no processor":        {stopped, EndpointPath + "?endpoint=" + ep(inOne), http.StatusServiceUnavailable},
		"row, no endpoint":         {running.Config.Handler, EndpointPath, http.StatusBadRequest},
		"row, invalid UTF-8":       {running.Config.Handler, EndpointPath + "?endpoint=%ff", http.StatusBadRequest},
		"buckets, no processor":    {stopped, EndpointBucketsPath + "?endpoint=" + ep(inOne) + "&step=60&from=0&to=60", http.StatusServiceUnavailable},
		"buckets, bad step":        {running.Config.Handler, EndpointBucketsPath + "?endpoint=" + ep(inOne) + "&step=0&from=0&to=60", http.StatusBadRequest},
		"buckets, to before from":  {running.Config.Handler, EndpointBucketsPath + "?endpoint=" + ep(inOne) + "&step=60&from=60&to=0", http.StatusBadRequest},
		"buckets, not held here":   {running.Config.Handler, EndpointBucketsPath + "?endpoint=" + ep(inOther) + "&step=60&from=0&to=60", http.StatusMisdirectedRequest},
		"buckets, answered":        {running.Config.Handler, EndpointBucketsPath + "?endpoint=" + ep(inOne) + "&step=60&from=0&to=60", http.StatusOK},
		"list, no processor":       {stopped, EndpointsPath + "?partitions=1&order=calls&limit=5", http.StatusServiceUnavailable},
		"list, no partitions":      {running.Config.Handler, EndpointsPath + "?order=calls&limit=5", http.StatusBadRequest},
		"list, bad order":          {running.Config.Handler, EndpointsPath + "?partitions=1&order=slowest&limit=5", http.StatusBadRequest},
		"list, limit too big":      {running.Config.Handler, EndpointsPath + "?partitions=1&order=calls&limit=1002", http.StatusBadRequest},
		"list, bad cursor":         {running.Config.Handler, EndpointsPath + "?partitions=1&order=calls&limit=5&after_value=x", http.StatusBadRequest},
		"list, not listed here":    {running.Config.Handler, EndpointsPath + "?partitions=1,2&order=calls&limit=5", http.StatusMisdirectedRequest},
		"list, answered":           {running.Config.Handler, EndpointsPath + "?partitions=1&order=p99&limit=5", http.StatusOK},
		"list, answered after one": {running.Config.Handler, EndpointsPath + "?partitions=1&order=calls&limit=5&after_value=1e9&after_endpoint=", http.StatusOK},
	} {
		rec := httptest.NewRecorder()
		c.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.path, nil))
		if rec.Code != c.want {
			t.Errorf("%s: %d %s, want %d", name, rec.Code, rec.Body, c.want)
		}
		if strings.HasPrefix(name, "buckets") && rec.Code != http.StatusBadRequest {
			want := fmt.Sprint(endpoints.PartitionOf(inOne, parts))
			if name == "buckets, not held here" {
				want = fmt.Sprint(endpoints.PartitionOf(inOther, parts))
			}
			if got := rec.Header().Get(HeaderPartition); got != want {
				t.Errorf("%s: names partition %q, want %s", name, got, want)
			}
		}
		if name == "list, answered" {
			var page EndpointsPage
			if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil || page.Endpoints != len(all[1]) ||
				len(page.Rows) != min(5, len(all[1])) || !slices.Equal(page.Partitions, []int32{1}) {
				t.Errorf("%s: page %+v (err %v), want %d endpoints of partition 1", name, page, err, len(all[1]))
			}
		}
	}
}

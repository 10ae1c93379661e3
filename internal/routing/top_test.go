package routing

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/tester"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/ownership"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/internal/top"
)

// runningWorker is a Worker over a running (goka tester) processor whose
// index holds rows of the given partitions.
func runningWorker(t *testing.T, rows map[int32][]top.Row) (*Worker, *httptest.Server) {
	t.Helper()
	idx := top.New()
	for p, rs := range rows {
		idx.Recovering(p)
		idx.Seed(p, func(yield func(string, top.Usage) bool) {
			for _, r := range rs {
				if !yield(r.Client, top.Usage{Total: r.Total, LastSeen: r.LastSeen}) {
					return
				}
			}
		})
		idx.Recovered(p)
	}
	w := NewWorker(parts, idx)
	gkt := tester.New(t)
	graph := goka.DefineGroup("g", goka.Input("in", new(codec.String), func(goka.Context, any) {}), goka.Persist(new(codecs.ClientUsage)))
	proc, err := goka.NewProcessor(nil, graph, goka.WithTester(gkt))
	if err != nil {
		t.Fatal(err)
	}
	w.SetProcessor(proc)
	testutil.RunProcessor(t, proc)
	srv := httptest.NewServer(w.Handler())
	t.Cleanup(srv.Close)
	return w, srv
}

// spread makes n clients with distinct-ish totals over the partitions and
// returns them per partition and in index order.
func spread(n int) (map[int32][]top.Row, []top.Row) {
	byPart := map[int32][]top.Row{}
	var all []top.Row
	for i := range n {
		r := top.Row{Client: fmt.Sprintf("10.0.%d.%d", i/256, i%256), Total: uint64(1 + (i*7919)%97)}
		p := ours(r.Client)
		byPart[p] = append(byPart[p], r)
		all = append(all, r)
	}
	slices.SortFunc(all, func(a, b top.Row) int {
		if a.Key().Before(b.Key()) {
			return -1
		}
		return 1
	})
	return byPart, all
}

func ownersOf(addrs map[int32]string) *ownership.Map {
	m := &ownership.Map{State: "Stable", Partitions: parts, Owners: map[int32]ownership.Owner{}}
	for p, a := range addrs {
		m.Owners[p] = ownership.Owner{MemberID: a, Addr: a}
	}
	return m
}

// Pages merged from two workers, each ranking its own partitions, list
// every client once, in order, and count them all.
func TestReaderPagesMergeTheWorkersTops(t *testing.T) {
	byPart, want := spread(300)
	_, a := runningWorker(t, map[int32][]top.Row{0: byPart[0], 1: byPart[1]})
	_, b := runningWorker(t, map[int32][]top.Row{2: byPart[2], 3: byPart[3]})
	r := newTestReader(newOwners(ownersOf(map[int32]string{0: addr(a), 1: addr(a), 2: addr(b), 3: addr(b)})))
	defer r.Close()

	var got []top.Row
	var after *top.Key
	for range len(want) {
		page, err := r.Top(top.AllCalls, after, 7)
		if err != nil {
			t.Fatal(err)
		}
		rows := page.Rows
		if page.Clients != len(want) {
			t.Fatalf("clients = %d, want %d", page.Clients, len(want))
		}
		if len(rows) == 0 {
			break
		}
		got = append(got, rows...)
		k := rows[len(rows)-1].Key()
		after = &k
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged %d rows, want %d in index order; first got %v want %v", len(got), len(want), got[:min(3, len(got))], want[:3])
	}
}

// A map naming a worker for partitions it does not rank (it lost them)
// gets no answer but 503 after the window; once the map names the right
// owner the page is answered.
func TestReaderPageNeverMergesAWrongOwner(t *testing.T) {
	byPart, want := spread(40)
	wa, a := runningWorker(t, map[int32][]top.Row{0: byPart[0], 1: byPart[1]})
	_, b := runningWorker(t, map[int32][]top.Row{2: byPart[2], 3: byPart[3]})
	stale := ownersOf(map[int32]string{0: addr(a), 1: addr(a), 2: addr(a), 3: addr(b)})
	o := newOwners(stale)
	r := newTestReader(o)
	defer r.Close()
	page, err := r.Top(top.AllCalls, nil, 10)
	rows := page.Rows
	var ua *Unavailable
	if !errors.As(err, &ua) || rows != nil || ua.Status() != http.StatusServiceUnavailable || ua.RetryAfter() <= 0 {
		t.Fatalf("Page with a wrong owner = %v, %v; want *Unavailable with Retry-After", rows, err)
	}
	if wa.Refused() == 0 {
		t.Error("the worker asked for a partition it does not rank did not refuse")
	}

	done := make(chan error, 1)
	r.Window = 10 * time.Second
	go func() {
		page, err = r.Top(top.AllCalls, nil, 10)
		rows = page.Rows
		done <- err
	}()
	o.set(ownersOf(map[int32]string{0: addr(a), 1: addr(a), 2: addr(b), 3: addr(b)}))
	if err := <-done; err != nil || !slices.Equal(rows, want[:10]) {
		t.Fatalf("after the map changed: %v, %v; want the top 10", rows, err)
	}
}

func TestWorkerTopRefusals(t *testing.T) {
	byPart, _ := spread(20)
	stopped := NewWorker(parts, top.New())
	_, running := runningWorker(t, map[int32][]top.Row{1: byPart[1]})
	for name, c := range map[string]struct {
		h     http.Handler
		query string
		want  int
	}{
		"no partitions":      {running.Config.Handler, "limit=5", http.StatusBadRequest},
		"partition too big":  {running.Config.Handler, "partitions=4&limit=5", http.StatusBadRequest},
		"repeated partition": {running.Config.Handler, "partitions=1,1&limit=5", http.StatusBadRequest},
		"limit too big":      {running.Config.Handler, "partitions=1&limit=1002", http.StatusBadRequest},
		"bad cursor":         {running.Config.Handler, "partitions=1&limit=5&after_total=x", http.StatusBadRequest},
		"not ranked here":    {running.Config.Handler, "partitions=0,1&limit=5", http.StatusMisdirectedRequest},
		"no processor":       {stopped.Handler(), "partitions=1&limit=5", http.StatusServiceUnavailable},
		"answered":           {running.Config.Handler, "partitions=1&limit=5", http.StatusOK},
	} {
		rec := httptest.NewRecorder()
		c.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, TopPath+"?"+c.query, nil))
		if rec.Code != c.want {
			t.Errorf("%s: %d %s, want %d", name, rec.Code, rec.Body, c.want)
		}
		if rec.Code == http.StatusOK {
			var page TopPage
			if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil || page.Clients != len(byPart[1]) || len(page.Rows) != min(5, len(byPart[1])) {
				t.Errorf("%s: page %+v (err %v), want %d clients", name, page, err, len(byPart[1]))
			}
		}
	}
}

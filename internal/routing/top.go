package routing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/ownership"
	"github.com/inarious/inarious/internal/top"
)

// TopPath is the worker's top-clients endpoint:
// GET TopPath?partitions=0,3&limit=k[&after_total=t&after_client=c][&service=s]
// answers the first k clients of those partitions in index order (after the
// row at (t, c) if given) as a TopPage: by all their calls, or with service
// by their calls to s (codecs.DefaultService for the default one).
const TopPath = "/query/top"

// maxTopLimit bounds one worker page: the API asks for one row more than
// its largest page.
const maxTopLimit = 1001

// TopPage is a worker's answer to TopPath: rows of exactly Partitions.
type TopPage struct {
	Partitions []int32   `json:"partitions"`
	Clients    int       `json:"clients"`
	Requests   uint64    `json:"requests"`
	Rows       []top.Row `json:"rows"`
}

func (w *Worker) serveTop(rw http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	parts, err := parsePartitions(q.Get("partitions"), w.partitions)
	if err != nil {
		http.Error(rw, err.Error(), http.StatusBadRequest)
		return
	}
	limit, err := strconv.Atoi(q.Get("limit"))
	if err != nil || limit < 1 || limit > maxTopLimit {
		http.Error(rw, fmt.Sprintf("limit must be an integer from 1 to %d", maxTopLimit), http.StatusBadRequest)
		return
	}
	var after *top.Key
	if q.Has("after_total") {
		t, err := strconv.ParseUint(q.Get("after_total"), 10, 64)
		if err != nil {
			http.Error(rw, "after_total must be an unsigned integer", http.StatusBadRequest)
			return
		}
		after = &top.Key{Total: t, Client: q.Get("after_client")}
	}
	ranking := top.AllCalls
	if q.Has("service") {
		ranking = top.ByService(codecs.NormalService(q.Get("service")))
	}
	if w.top == nil {
		w.refused.Add(1)
		http.Error(rw, "this worker keeps no top-clients index", http.StatusNotImplemented)
		return
	}
	page := TopPage{Partitions: parts}
	// Running means every partition of this generation is recovered, and a
	// partition this member lost is forgotten (its storage closed), so a
	// ranked partition is an owned one for the whole guarded read.
	err = w.guarded(func(*goka.Processor) error {
		for _, p := range parts {
			n, sum, ranked := w.top.Partition(ranking, p)
			if !ranked {
				return fmt.Errorf("partition %d: %w", p, errNotOwned)
			}
			page.Clients += n
			page.Requests += sum
		}
		page.Rows = w.top.PageOf(ranking, parts, after, limit)
		return nil
	})
	if w.refuse(rw, err) {
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(rw).Encode(page)
}

// parsePartitions reads "0,3,5": distinct partitions below n, at least one.
func parsePartitions(s string, n int) ([]int32, error) {
	if s == "" {
		return nil, errors.New("partitions is required: a comma-separated list")
	}
	var parts []int32
	for f := range strings.SplitSeq(s, ",") {
		p, err := strconv.ParseInt(f, 10, 32)
		if err != nil || p < 0 || int(p) >= n || slices.Contains(parts, int32(p)) {
			return nil, fmt.Errorf("partitions: %q is not a distinct partition from 0 to %d", f, n-1)
		}
		parts = append(parts, int32(p))
	}
	return parts, nil
}

func joinPartitions(parts []int32) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(p)))
	}
	return b.String()
}

// Top merges the workers' pages of ranking rk: each owner answers the first
// limit clients of its partitions after the row at after, with the counts
// of exactly the partitions asked, and so every client is counted once;
// otherwise it retries for Window, then gives up with *Unavailable.
func (r *Reader) Top(rk top.Ranking, after *top.Key, limit int) (top.Page, error) {
	var t top.Page
	err := r.retry("not every usage partition's owner answered (the usage group is rebalancing); retry later",
		func(m *ownership.Map) (bool, error) {
			var err error
			t, err = r.tryTop(m, rk, after, limit)
			return err == nil, err
		})
	return t, err
}

func (r *Reader) tryTop(m *ownership.Map, rk top.Ranking, after *top.Key, limit int) (top.Page, error) {
	q := url.Values{"limit": {strconv.Itoa(min(limit, maxTopLimit))}}
	if service, ok := rk.Service(); ok {
		if service == "" {
			service = codecs.DefaultService
		}
		q.Set("service", service)
	}
	if after != nil {
		q.Set("after_total", strconv.FormatUint(after.Total, 10))
		q.Set("after_client", after.Client)
	}
	var (
		pages [][]top.Row
		all   top.Page
	)
	err := r.askOwners(m, TopPath, q, func(body []byte) ([]int32, error) {
		var page TopPage
		if err := json.Unmarshal(body, &page); err != nil {
			return nil, err
		}
		pages = append(pages, page.Rows)
		all.Clients += page.Clients
		all.Requests += page.Requests
		return page.Partitions, nil
	})
	if err != nil {
		return top.Page{}, err
	}
	r.ok.Add(1)
	all.Rows = top.Merge(pages, limit)
	return all, nil
}

// askOwners asks every owner of m's partitions, at once, for path?q and
// the partitions it owns ("partitions"); take reads each owner's 200 (one
// at a time) and returns the partitions the answer is about, which must be
// those asked: an answer about others would count keys twice or not at
// all. Every partition must have an owner, every owner must answer.
func (r *forwarder) askOwners(m *ownership.Map, path string, q url.Values, take func(body []byte) ([]int32, error)) error {
	if !m.Covered() {
		r.noOwner.Add(1)
		return fmt.Errorf("not every %s partition has an owner with a query address yet", r.table)
	}
	byOwner := map[string][]int32{}
	for p := range int32(m.Partitions) {
		o, _ := m.Owner(p)
		byOwner[o.Addr] = append(byOwner[o.Addr], p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.AttemptTimeout)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for addr, parts := range byOwner {
		wg.Go(func() {
			body, err := r.ask(ctx, addr, path, parts, q)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				var got []int32
				if got, err = take(body); err != nil {
					err = fmt.Errorf("owner %s: %w", addr, err)
				} else if !slices.Equal(got, parts) {
					r.refused.Add(1)
					err = fmt.Errorf("owner %s answered for partitions %v, not %v", addr, got, parts)
				}
			}
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ask asks the owner at addr for path?q about parts: the body of its 200.
func (r *forwarder) ask(ctx context.Context, addr, path string, parts []int32, q url.Values) ([]byte, error) {
	q = maps.Clone(q)
	q.Set("partitions", joinPartitions(parts))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.http.Do(req)
	if err != nil {
		r.connFailed.Add(1)
		return nil, fmt.Errorf("owner %s of partitions %v: %w", addr, parts, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		r.connFailed.Add(1)
		return nil, fmt.Errorf("owner %s of partitions %v: %w", addr, parts, err)
	}
	if resp.StatusCode != http.StatusOK {
		r.refused.Add(1)
		return nil, fmt.Errorf("owner %s of partitions %v refused: %d %s", addr, parts, resp.StatusCode, clip(body))
	}
	return body, nil
}

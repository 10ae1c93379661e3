package routing

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/ownership"
	"github.com/inarious/inarious/internal/windows"
)

const parts = 4

// fakeOwners is an Owners whose map the test sets.
type fakeOwners struct {
	mu       sync.Mutex
	m        *ownership.Map
	changed  chan struct{}
	refreshs atomic.Int64
}

func newOwners(m *ownership.Map) *fakeOwners { return &fakeOwners{m: m, changed: make(chan struct{})} }

func (f *fakeOwners) Current() (*ownership.Map, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m, f.changed
}
func (f *fakeOwners) Refresh() { f.refreshs.Add(1) }
func (f *fakeOwners) set(m *ownership.Map) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m = m
	close(f.changed)
	f.changed = make(chan struct{})
}

// allOn maps every partition to addr.
func allOn(addr string) *ownership.Map {
	m := &ownership.Map{State: "Stable", Partitions: parts, Owners: map[int32]ownership.Owner{}}
	for p := range int32(parts) {
		m.Owners[p] = ownership.Owner{MemberID: addr, Addr: addr}
	}
	return m
}

// worker fakes a worker's endpoint: status for every read, with rows.
func worker(t *testing.T, status int, rows map[string]uint64, partitionOf func(string) int32) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := r.URL.Query().Get("client")
		w.Header().Set(HeaderPartition, strconv.Itoa(int(partitionOf(c))))
		total, ok := rows[c]
		switch {
		case status != http.StatusOK:
			w.WriteHeader(status)
		case !ok:
			w.WriteHeader(http.StatusNotFound)
		default:
			b, _ := new(codecs.ClientUsage).Encode(&activitypb.ClientUsage{Client: c, Total: total})
			_, _ = w.Write(b)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// testWindows is the windowing the test workers keep.
var testWindows = windows.Config{Specs: []windows.Spec{{Step: time.Minute, Retention: time.Hour}}}

func ours(c string) int32 { return kafka.PartitionOf(c, parts) }

func addr(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

func newTestReader(o Owners) *Reader {
	r := NewReader(o, testWindows)
	r.Window = 300 * time.Millisecond
	return r
}

func TestReaderAnswersFromTheOwner(t *testing.T) {
	w := worker(t, http.StatusOK, map[string]uint64{"10.0.0.1": 7}, ours)
	r := newTestReader(newOwners(allOn(addr(w))))
	defer r.Close()
	u, err := r.Get("10.0.0.1")
	if err != nil || u.GetTotal() != 7 || u.GetClient() != "10.0.0.1" {
		t.Fatalf("Get = %v, %v; want total 7", u, err)
	}
	if u, err := r.Get("10.0.0.2"); err != nil || u != nil {
		t.Fatalf("Get of an unknown client = %v, %v; want nil, nil", u, err)
	}
	if !r.Recovered() {
		t.Error("not recovered although every partition has an owner")
	}
	if r.ok.Load() != 1 || r.notFound.Load() != 1 {
		t.Errorf("counters ok=%d not_found=%d, want 1, 1", r.ok.Load(), r.notFound.Load())
	}
}

// A refusing owner, an unreachable one, no owner, or one that hashes the
// client elsewhere: never an answer, 503 after the window.
func TestReaderGivesUpWithUnavailable(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	cases := map[string]*ownership.Map{
		"refuses":         allOn(addr(worker(t, http.StatusMisdirectedRequest, nil, ours))),
		"rebalancing":     allOn(addr(worker(t, http.StatusServiceUnavailable, nil, ours))),
		"unreachable":     allOn(addr(down)),
		"no owner":        {State: "PreparingRebalance", Partitions: parts},
		"no map":          nil,
		"other partition": allOn(addr(worker(t, http.StatusOK, map[string]uint64{"10.0.0.1": 7}, func(c string) int32 { return (ours(c) + 1) % parts }))),
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			o := newOwners(m)
			r := newTestReader(o)
			defer r.Close()
			t0 := time.Now()
			u, err := r.Get("10.0.0.1")
			var ua *Unavailable
			if !errors.As(err, &ua) || u != nil {
				t.Fatalf("Get = %v, %v; want *Unavailable", u, err)
			}
			if took := time.Since(t0); took < r.Window || took > r.Window+2*time.Second {
				t.Errorf("gave up after %v, window %v", took, r.Window)
			}
			if ua.Status() != http.StatusServiceUnavailable || ua.RetryAfter() <= 0 {
				t.Errorf("status %d retry after %v", ua.Status(), ua.RetryAfter())
			}
			if o.refreshs.Load() == 0 {
				t.Error("no refresh of the owners map asked for after a miss")
			}
			if r.unavailable.Load() != 1 || r.ok.Load() != 0 {
				t.Errorf("counters unavailable=%d ok=%d", r.unavailable.Load(), r.ok.Load())
			}
		})
	}
}

// During a takeover the old owner refuses until the map names the new one,
// whose answer is the one returned.
func TestReaderFollowsTheNewOwner(t *testing.T) {
	old := worker(t, http.StatusMisdirectedRequest, nil, ours)
	next := worker(t, http.StatusOK, map[string]uint64{"10.0.0.1": 9}, ours)
	o := newOwners(allOn(addr(old)))
	r := newTestReader(o)
	r.Window = 5 * time.Second
	defer r.Close()
	go func() {
		for o.refreshs.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		o.set(allOn(addr(next)))
	}()
	u, err := r.Get("10.0.0.1")
	if err != nil || u.GetTotal() != 9 {
		t.Fatalf("Get = %v, %v; want the new owner's total 9", u, err)
	}
	if r.refused.Load() == 0 {
		t.Error("the old owner's refusal was not counted")
	}
}

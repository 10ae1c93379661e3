package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/internal/top"
	"github.com/inarious/inarious/internal/windows"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fakeTable is a usage table in memory with a real top-clients index, fed
// as the view feeds it. calls counts every read the hub makes.
type fakeTable struct {
	mu    sync.Mutex
	rows  map[string]*activitypb.ClientUsage
	top   *top.Index
	calls atomic.Int64
	gets  atomic.Int64
}

func newFakeTable() *fakeTable {
	return &fakeTable{rows: map[string]*activitypb.ClientUsage{}, top: top.New()}
}

func (f *fakeTable) hit(client, endpoint string, n uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.rows[client]
	if u == nil {
		u = &activitypb.ClientUsage{Client: client, Endpoints: map[string]*activitypb.EndpointUsage{}}
		f.rows[client] = u
	}
	if u.Endpoints[endpoint] == nil {
		u.Endpoints[endpoint] = &activitypb.EndpointUsage{}
	}
	u.Endpoints[endpoint].Count += n
	u.Total += n
	f.top.Set(int32(len(client)%3), client, top.Usage{Total: u.Total})
}

func proto(u *activitypb.ClientUsage) *activitypb.ClientUsage {
	cp := &activitypb.ClientUsage{Client: u.Client, Total: u.Total, Endpoints: map[string]*activitypb.EndpointUsage{}}
	for k, e := range u.Endpoints {
		cp.Endpoints[k] = &activitypb.EndpointUsage{Count: e.Count}
	}
	return cp
}

func (f *fakeTable) Get(client string) (*activitypb.ClientUsage, error) {
	f.calls.Add(1)
	f.gets.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if u := f.rows[client]; u != nil {
		return proto(u), nil
	}
	return nil, nil
}

func (f *fakeTable) Top(r top.Ranking, after *top.Key, limit int) (top.Page, error) {
	f.calls.Add(1)
	return f.top.Top(r, after, limit), nil
}
func (f *fakeTable) Recovered() bool { f.calls.Add(1); return true }

// The dashboard reads no windows.
func (f *fakeTable) Windows() windows.Config { return windows.Config{} }
func (f *fakeTable) Series(string, time.Duration, time.Time, time.Time) ([]windows.Bucket, error) {
	return nil, errors.New("no windows")
}
func (f *fakeTable) Range(string, time.Duration) (windows.Sum, error) {
	return windows.Sum{}, errors.New("no windows")
}

func decode(t *testing.T, msg []byte) Snapshot {
	t.Helper()
	var s Snapshot
	if err := json.Unmarshal(msg, &s); err != nil {
		t.Fatalf("snapshot %s: %v", msg, err)
	}
	return s
}

func TestTickBuildsTopClientsAndRate(t *testing.T) {
	h := NewHub(WithLogger(quiet))
	tbl := newFakeTable()
	h.src = tbl
	h.top = 2
	start := time.Now()
	h.tick(start, time.Time{}) // learns the table is recovered
	ch, cancel := h.Subscribe()
	defer cancel()

	tbl.hit("a", "GET /x", 3)
	tbl.hit("b", "GET /x", 5)
	tbl.hit("b", "GET /y", 1)
	tbl.hit("c", "GET /x", 1)
	if !h.tick(start.Add(time.Second), time.Time{}) {
		t.Fatal("tick with a subscriber and changes sent nothing")
	}
	s := decode(t, <-ch)
	if s.Clients != 3 || s.Requests != 10 || s.Events != 10 || !s.Recovered {
		t.Errorf("clients %d requests %d events %d recovered %v; want 3 10 10 true", s.Clients, s.Requests, s.Events, s.Recovered)
	}
	if s.Rate != 10 {
		t.Errorf("rate %v, want 10/s", s.Rate)
	}
	if len(s.Top) != 2 || s.Top[0].Client != "b" || s.Top[1].Client != "a" ||
		s.Top[0].Endpoints["GET /x"].Count != 5 || s.Top[0].Endpoints["GET /y"].Count != 1 {
		t.Errorf("top = %+v, want b (5+1) then a", s.Top)
	}
}

func TestSlowSubscriberGetsOnlyTheNewest(t *testing.T) {
	h := NewHub(WithLogger(quiet))
	tbl := newFakeTable()
	h.src = tbl
	slow, cancelSlow := h.Subscribe()
	defer cancelSlow()
	fast, cancelFast := h.Subscribe()
	defer cancelFast()

	now := time.Now()
	for i := range 5 {
		tbl.hit("a", "GET /x", 1)
		if !h.tick(now.Add(time.Duration(i)*time.Second), time.Time{}) {
			t.Fatalf("tick %d sent nothing", i)
		}
		if got := decode(t, <-fast).Requests; got != uint64(i+1) {
			t.Fatalf("fast subscriber got requests=%d, want %d", got, i+1)
		}
	}
	if n := len(slow); n != 1 {
		t.Fatalf("slow subscriber holds %d snapshots, want 1", n)
	}
	if got := decode(t, <-slow).Requests; got != 5 {
		t.Errorf("slow subscriber's snapshot has requests=%d, want the newest (5)", got)
	}
}

func TestIdleHubSendsNothingWithoutChanges(t *testing.T) {
	h := NewHub(WithLogger(quiet))
	h.src = newFakeTable()
	now := time.Now()
	if h.tick(now, time.Time{}) {
		t.Error("sent without subscribers")
	}
	ch, cancel := h.Subscribe()
	defer cancel()
	if !h.tick(now, time.Time{}) {
		t.Fatal("a new subscriber should get a fresh snapshot")
	}
	<-ch
	if h.tick(now.Add(h.interval), now) {
		t.Error("sent again with nothing changed")
	}
	if !h.tick(now.Add(idleEvery), now) {
		t.Error("no idle refresh after idleEvery, so the rate would never fall to zero")
	}
}

func TestUnsubscribeAndClose(t *testing.T) {
	h := NewHub(WithLogger(quiet))
	_, cancel := h.Subscribe()
	ch2, _ := h.Subscribe()
	if n := h.Subscribers(); n != 2 {
		t.Fatalf("subscribers = %d, want 2", n)
	}
	cancel()
	cancel() // idempotent
	if n := h.Subscribers(); n != 1 {
		t.Fatalf("subscribers after cancel = %d, want 1", n)
	}
	h.Close()
	if _, ok := <-ch2; ok {
		t.Error("Close left a subscription open")
	}
	ch3, cancel3 := h.Subscribe()
	defer cancel3()
	if _, ok := <-ch3; ok {
		t.Error("Subscribe after Close gave an open channel")
	}
}

// TestHubIdlesWithoutSubscribers: once the view has recovered and nobody
// listens, the hub reads nothing and runs no timer; a subscriber wakes it
// at once, and it idles again when the subscriber leaves. synctest's clock
// makes "for an hour" instant and exact.
func TestHubIdlesWithoutSubscribers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := NewHub(WithLogger(quiet))
		tbl := newFakeTable()
		for i := range 100 {
			tbl.hit(fmt.Sprintf("c%d", i), "GET /x", uint64(i))
		}
		ctx, stop := context.WithCancel(t.Context())
		defer stop()
		go h.Run(ctx, tbl)

		time.Sleep(h.interval) // one tick learns the view has recovered
		synctest.Wait()
		idle := tbl.calls.Load()
		for range 10 {
			tbl.hit("c1", "GET /x", 1) // changes do not wake it either
		}
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := tbl.calls.Load() - idle; n != 0 {
			t.Fatalf("idle hub read the source %d times in an hour", n)
		}

		ch, cancel := h.Subscribe()
		synctest.Wait() // no time passes: the newcomer is answered at once
		select {
		case msg := <-ch:
			if s := decode(t, msg); s.Clients != 100 || len(s.Top) != TopClients || s.Top[0].Client != "c99" {
				t.Errorf("first snapshot: clients %d, top %d starting %v", s.Clients, len(s.Top), s.Top[0].Client)
			}
		default:
			t.Fatal("a new subscriber got no snapshot without waiting for a tick")
		}
		// A tick reads O(top) rows whatever the table's size.
		before := tbl.gets.Load()
		tbl.hit("c5", "GET /x", 1000)
		time.Sleep(h.interval)
		synctest.Wait()
		if got := decode(t, <-ch); got.Top[0].Client != "c5" {
			t.Errorf("top after an update: %v", got.Top[0].Client)
		}
		if n := tbl.gets.Load() - before; n != TopClients {
			t.Errorf("one snapshot read %d clients' details, want %d", n, TopClients)
		}

		cancel()
		time.Sleep(h.interval) // the next tick notices nobody listens
		synctest.Wait()
		idle = tbl.calls.Load()
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := tbl.calls.Load() - idle; n != 0 {
			t.Fatalf("hub read the source %d times in an hour after its subscriber left", n)
		}
	})
}

// failingEmitter lets the API run without Kafka.
type failingEmitter struct{}

func (failingEmitter) Emit(string, any) (*goka.Promise, error) {
	return nil, errors.New("no kafka here")
}
func (failingEmitter) Finish() error { return nil }

// TestEventsStreamThroughAPI streams through the real API stack (activity
// middleware, StatusRecorder) on a server whose timeouts are far shorter than
// the stream, then checks the subscription ends with the client and that
// Shutdown ends open streams.
func TestEventsStreamThroughAPI(t *testing.T) {
	h := NewHub(WithLogger(quiet))
	h.interval = 10 * time.Millisecond
	tbl := newFakeTable()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go h.Run(ctx, tbl)

	pub := api.NewPublisher(failingEmitter{}, 16, api.WithLogger(quiet))
	defer pub.Close(context.Background())
	resolver, err := api.NewClientResolver(nil)
	if err != nil {
		t.Fatal(err)
	}
	handler, err := api.New(pub, resolver, api.WithLogger(quiet), api.WithRoutes(h.Routes()...))
	if err != nil {
		t.Fatal(err)
	}

	assets := httptest.NewServer(handler)
	defer assets.Close()
	for _, p := range []string{"/dashboard", "/dashboard/assets/app.js", "/dashboard/assets/vendor/chart.umd.min.js"} {
		resp, err := http.Get(assets.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d", p, resp.StatusCode)
		}
	}

	srv := &http.Server{Handler: handler, ReadTimeout: 150 * time.Millisecond, WriteTimeout: 150 * time.Millisecond}
	srv.RegisterOnShutdown(h.Close)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	base := "http://" + ln.Addr().String()

	reqCtx, closeStream := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(reqCtx, http.MethodGet, base+"/dashboard/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	events := bufio.NewScanner(resp.Body)
	next := func() Snapshot {
		t.Helper()
		for events.Scan() {
			if line, ok := strings.CutPrefix(events.Text(), "data: "); ok {
				return decode(t, []byte(line))
			}
		}
		t.Fatalf("stream ended: %v", events.Err())
		return Snapshot{}
	}
	// Keep the stream busy for several times the server's timeouts.
	var n uint64
	for end := time.Now().Add(750 * time.Millisecond); time.Now().Before(end); {
		n++
		tbl.hit("10.1.1.1", "GET /x", 1)
		for next().Requests < n {
		}
	}
	if n < 3 {
		t.Fatalf("only %d updates streamed", n)
	}

	closeStream()
	waitSubscribers(t, h, 0, "after the client left")

	// An open stream must not hold Shutdown up.
	resp2, err := http.Get(base + "/dashboard/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	waitSubscribers(t, h, 1, "with a second stream open")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown with an open stream: %v", err)
	}
}

func waitSubscribers(t *testing.T, h *Hub, want int, when string) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		n := h.Subscribers()
		return n == want, fmt.Sprintf("%d subscribers %s, want %d", n, when, want)
	})
}

// failingTable is a fake table whose reads of the top can fail, as routed
// reads do while the group rebalances.
type failingTable struct {
	*fakeTable
	err error
}

func (f *failingTable) Top(r top.Ranking, after *top.Key, limit int) (top.Page, error) {
	if f.err != nil {
		return top.Page{}, f.err
	}
	return f.fakeTable.Top(r, after, limit)
}

// The event count follows rises of the table's calls only: a failed read
// skips a tick, and an expiry (calls going down) never makes it go back.
func TestEventsCountOnlyRises(t *testing.T) {
	h := NewHub(WithLogger(quiet))
	tbl := &failingTable{fakeTable: newFakeTable()}
	h.src = tbl
	tbl.hit("a", "GET /x", 5)
	now := time.Now()
	h.tick(now, time.Time{}) // recovered: counting starts from here
	ch, cancel := h.Subscribe()
	defer cancel()
	next := func(want uint64, what string) {
		t.Helper()
		now = now.Add(2 * idleEvery)
		if !h.tick(now, time.Time{}) {
			t.Fatalf("%s: nothing sent", what)
		}
		if s := decode(t, <-ch); s.Events != want {
			t.Fatalf("%s: events %d, want %d", what, s.Events, want)
		}
	}
	tbl.hit("b", "GET /x", 3)
	next(3, "3 calls after recovery")
	tbl.err = errors.New("rebalancing")
	now = now.Add(2 * idleEvery)
	if h.tick(now, time.Time{}) {
		t.Fatal("a failed read sent a snapshot")
	}
	tbl.err = nil
	tbl.hit("b", "GET /x", 2)
	next(5, "2 more calls after a failed read")
	tbl.mu.Lock()
	delete(tbl.rows, "a")
	tbl.mu.Unlock()
	tbl.top.Delete(int32(len("a")%3), "a") // expired
	next(5, "after an expiry")
	tbl.hit("b", "GET /x", 1)
	next(6, "one call after the expiry")
}

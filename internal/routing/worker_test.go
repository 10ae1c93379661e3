package routing

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/tester"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/testutil"
)

func get(t *testing.T, h http.Handler, client string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, Path+"?client="+url.QueryEscape(client), nil))
	return rec
}

// The worker answers from a running processor's table, and refuses before
// it has one and after it stopped.
func TestWorkerAnswersOnlyWhileRunning(t *testing.T) {
	w := NewWorker(1, nil)
	h := w.Handler()
	if rec := get(t, h, "10.0.0.1"); rec.Code != http.StatusServiceUnavailable || rec.Header().Get(HeaderPartition) != "0" {
		t.Fatalf("without a processor: %d (partition %q), want 503 naming partition 0", rec.Code, rec.Header().Get(HeaderPartition))
	}
	if rec := get(t, h, string([]byte{0xff})); rec.Code != http.StatusBadRequest {
		t.Errorf("invalid UTF-8 client: %d, want 400", rec.Code)
	}

	gkt := tester.New(t)
	graph := goka.DefineGroup("g",
		goka.Input("in", new(codec.String), func(ctx goka.Context, _ any) {
			u, _ := ctx.Value().(*activitypb.ClientUsage)
			if u == nil {
				u = &activitypb.ClientUsage{Client: ctx.Key()}
			}
			u.Total++
			ctx.SetValue(u)
		}),
		goka.Persist(new(codecs.ClientUsage)),
	)
	proc, err := goka.NewProcessor(nil, graph, goka.WithTester(gkt))
	if err != nil {
		t.Fatal(err)
	}
	w.SetProcessor(proc)
	stop := testutil.RunProcessor(t, proc)
	gkt.Consume("in", "10.0.0.1", "x")
	gkt.Consume("in", "10.0.0.1", "x")

	rec := get(t, h, "10.0.0.1")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != ContentType {
		t.Fatalf("owned client: %d %s", rec.Code, rec.Body)
	}
	v, err := new(codecs.ClientUsage).Decode(rec.Body.Bytes())
	if err != nil || v.(*activitypb.ClientUsage).GetTotal() != 2 {
		t.Fatalf("answer %v (err %v), want total 2", v, err)
	}
	if rec := get(t, h, "10.0.0.2"); rec.Code != http.StatusNotFound {
		t.Errorf("unknown client: %d, want 404", rec.Code)
	}

	stop()
	if rec := get(t, h, "10.0.0.1"); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("after the processor stopped: %d, want 503", rec.Code)
	}
	if w.Answered() != 2 || w.Refused() != 2 {
		t.Errorf("answered %d refused %d, want 2, 2", w.Answered(), w.Refused())
	}
}

// fakeLease is a lease confirmed at a set time.
type fakeLease struct{ at atomic.Pointer[time.Time] }

func (l *fakeLease) Confirmed() time.Time {
	if p := l.at.Load(); p != nil {
		return *p
	}
	return time.Time{}
}

// A running processor's worker refuses (503) while its membership is
// unconfirmed or was last confirmed longer than LeaseTTL ago, as after a
// stall past the session timeout, and answers again once it is renewed.
func TestWorkerRefusesOnAStaleLease(t *testing.T) {
	var now atomic.Pointer[time.Time]
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now.Store(&t0)
	lease := &fakeLease{}
	w := NewWorker(1, nil, WithLease(lease), withClock(func() time.Time { return *now.Load() }))
	h := w.Handler()

	gkt := tester.New(t)
	graph := goka.DefineGroup("g",
		goka.Input("in", new(codec.String), func(ctx goka.Context, _ any) {
			ctx.SetValue(&activitypb.ClientUsage{Client: ctx.Key(), Total: 1})
		}),
		goka.Persist(new(codecs.ClientUsage)),
	)
	proc, err := goka.NewProcessor(nil, graph, goka.WithTester(gkt))
	if err != nil {
		t.Fatal(err)
	}
	w.SetProcessor(proc)
	defer testutil.RunProcessor(t, proc)()
	gkt.Consume("in", "10.0.0.1", "x")

	set := func(d time.Duration) { at := t0.Add(d); now.Store(&at) }
	for _, c := range []struct {
		name      string
		confirmed *time.Time
		now       time.Duration
		want      int
	}{
		{"never confirmed", nil, 0, http.StatusServiceUnavailable},
		{"confirmed just now", &t0, 0, http.StatusOK},
		{"confirmed LeaseTTL ago", &t0, LeaseTTL, http.StatusOK},
		{"confirmed longer ago (a stall)", &t0, LeaseTTL + time.Millisecond, http.StatusServiceUnavailable},
		{"stalled 10 s", &t0, 10 * time.Second, http.StatusServiceUnavailable},
	} {
		lease.at.Store(c.confirmed)
		set(c.now)
		if rec := get(t, h, "10.0.0.1"); rec.Code != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, rec.Code, rec.Body, c.want)
		}
	}
	// Renewed after the stall: answers again.
	renewed := t0.Add(10 * time.Second)
	lease.at.Store(&renewed)
	if rec := get(t, h, "10.0.0.1"); rec.Code != http.StatusOK {
		t.Errorf("renewed: %d %s, want 200", rec.Code, rec.Body)
	}
}

// A read that the process stalls in is refused when the lease expired
// meanwhile: the lease is checked again after the read.
func TestWorkerChecksTheLeaseAfterTheRead(t *testing.T) {
	var now atomic.Pointer[time.Time]
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now.Store(&t0)
	lease := &fakeLease{}
	lease.at.Store(&t0)
	w := NewWorker(1, nil, WithLease(lease), withClock(func() time.Time { return *now.Load() }))

	gkt := tester.New(t)
	graph := goka.DefineGroup("g",
		goka.Input("in", new(codec.String), func(ctx goka.Context, _ any) {}),
		goka.Persist(new(codecs.ClientUsage)),
	)
	proc, err := goka.NewProcessor(nil, graph, goka.WithTester(gkt))
	if err != nil {
		t.Fatal(err)
	}
	w.SetProcessor(proc)
	defer testutil.RunProcessor(t, proc)()
	err = w.guarded(func(*goka.Processor) error {
		later := t0.Add(10 * time.Second) // the stall
		now.Store(&later)
		return nil
	})
	if err == nil {
		t.Fatal("a read the lease expired during was not refused")
	}
}

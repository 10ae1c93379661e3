package routing

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

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

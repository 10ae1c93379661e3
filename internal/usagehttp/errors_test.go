package usagehttp_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/top"
)

// statusErr is a reader error that says how to answer, as routed reads do.
type statusErr struct {
	status int
	after  time.Duration
}

func (e statusErr) Error() string             { return "internal: owner 10.9.9.9:1 refused" }
func (e statusErr) Status() int               { return e.status }
func (e statusErr) RetryAfter() time.Duration { return e.after }
func (e statusErr) PublicDetail() string      { return "rebalancing; retry later" }

type failingUsage struct {
	fakeUsage
	err error
}

func (f failingUsage) Get(string) (*activitypb.ClientUsage, error)      { return nil, f.err }
func (f failingUsage) Top(top.Ranking, *top.Key, int) (top.Page, error) { return top.Page{}, f.err }

func TestUsageErrorsSayHowToAnswer(t *testing.T) {
	srv := serve(t, failingUsage{err: statusErr{http.StatusServiceUnavailable, 1500 * time.Millisecond}})
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/usage/10.0.0.1", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "2" {
		t.Errorf("GET /usage/{client} = %d, Retry-After %q; want 503, 2", rec.Code, rec.Header().Get("Retry-After"))
	}
	if b := rec.Body.String(); !strings.Contains(b, "rebalancing") || strings.Contains(b, "10.9.9.9") {
		t.Errorf("problem detail shows internals or not the public detail: %s", b)
	}

	srv = serve(t, failingUsage{err: statusErr{status: http.StatusNotImplemented}})
	rec = httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/usage", nil))
	if rec.Code != http.StatusNotImplemented || rec.Header().Get("Retry-After") != "" {
		t.Errorf("GET /usage = %d, Retry-After %q; want 501 without", rec.Code, rec.Header().Get("Retry-After"))
	}
}

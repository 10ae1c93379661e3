package endpointshttp_test

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/endpointshttp"
	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/processors/endpoints"
	"github.com/inarious/inarious/views"
	"github.com/inarious/inarious/views/viewstest"
)

const users = "GET /users/{id}"

// row has calls calls of class, one timed call per duration in ms.
func row(calls uint64, class int, ms ...int) *endpoints.Row {
	r := endpoints.NewRow()
	r.Calls = calls
	r.Status[class] = calls
	for _, d := range ms {
		r.Latency.Add(int64(d) * 1000)
	}
	return r
}

// fake holds four endpoints and two minute buckets of users, relative to
// the real clock (the routes resolve relative times with it).
func fake() *viewstest.Endpoints {
	minute := time.Now().UTC().Truncate(time.Minute)
	return viewstest.NewEndpoints(map[string]*endpoints.Row{
		users:                row(300, codecs.Class2xx, 10, 20),
		"GET /healthz":       row(1000, codecs.Class2xx, 1),
		"POST /users":        row(50, codecs.Class4xx, 500),
		"DELETE /users/{id}": row(50, codecs.Class2xx),
		"GET /users/series":  row(1, codecs.Class2xx),
		endpoints.BucketKey(users, time.Minute, minute.Add(-3*time.Minute).Unix()): row(10, codecs.Class2xx, 10),
		endpoints.BucketKey(users, time.Minute, minute.Add(-2*time.Minute).Unix()): row(10, codecs.Class5xx, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000),
	})
}

// serve mounts the routes on a gorilla router, as the API does (without
// auth and the activity middleware, which the api package tests).
func serve(reader views.EndpointReader) http.Handler {
	r := mux.NewRouter()
	httpx.Mount(r, endpointshttp.Routes(reader, endpointshttp.WithLogger(slog.New(slog.DiscardHandler))))
	return r
}

func get(t *testing.T, s http.Handler, path string, into any) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if into != nil && rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), into); err != nil {
			t.Fatalf("%s: %v: %s", path, err, rec.Body)
		}
	}
	return rec
}

// The endpoint is one escaped segment: %2F inside is not a separator, and
// the handler sees the name unescaped.
func TestEndpointNameIsOneEscapedSegment(t *testing.T) {
	s := serve(fake())
	for path, want := range map[string]string{
		"/endpoints/" + url.PathEscape(users):         users,
		"/endpoints/GET%20%2Fusers%2F%7Bid%7D":        users,
		"/endpoints/GET%20%2Fhealthz":                 "GET /healthz",
		"/endpoints/GET%20%2Fusers%2Fseries":          "GET /users/series",
		"/endpoints/" + url.PathEscape(users) + "/":   "",
		"/endpoints/GET%20/users/%7Bid%7D":            "",
		"/endpoints/GET%20%2Fusers%2F%7Bid%7D/series": "",
	} {
		var got endpoints.Summary
		rec := get(t, s, path, &got)
		switch {
		case want == "" && strings.HasSuffix(path, "/series"):
			if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"endpoint":"GET /users/{id}"`) {
				t.Errorf("%s = %d %s, want users' series", path, rec.Code, rec.Body)
			}
		case want == "":
			if rec.Code != http.StatusNotFound {
				t.Errorf("%s = %d, want 404 (not one segment)", path, rec.Code)
			}
		case rec.Code != http.StatusOK || got.Endpoint != want:
			t.Errorf("%s = %d %q, want %q", path, rec.Code, got.Endpoint, want)
		}
	}
}

func TestEndpointSummary(t *testing.T) {
	s := serve(fake())
	var got map[string]any
	rec := get(t, s, "/endpoints/"+url.PathEscape("POST /users"), &got)
	lat, _ := got["latency_ms"].(map[string]any)
	if rec.Code != http.StatusOK || got["calls"] != 50.0 || got["error_rate"] != 1.0 || lat["timed_calls"] != 1.0 || lat["p99"].(float64) < 495 {
		t.Errorf("%d %s", rec.Code, rec.Body)
	}
	rec = get(t, s, "/endpoints/"+url.PathEscape("GET /nowhere"), nil)
	if rec.Code != http.StatusNotFound || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Errorf("unknown endpoint = %d %s", rec.Code, rec.Body)
	}
	if rec := get(t, s, "/endpoints/"+url.PathEscape("GET /nowhere")+"?window=5m", nil); rec.Code != http.StatusNotFound {
		t.Errorf("unknown endpoint with window = %d, want 404", rec.Code)
	}
}

func TestEndpointWindowMergesBuckets(t *testing.T) {
	f := fake()
	var got endpointshttp.WindowSummary
	rec := get(t, serve(f), "/endpoints/"+url.PathEscape(users)+"?window=5m", &got)
	if rec.Code != http.StatusOK || got.Calls != 20 || got.Endpoint != users || got.Window != "5m" || got.Step != "1m" ||
		got.ErrorRate != 0.5 || got.Latency.P99 < 980 || got.From.IsZero() || !got.To.After(got.From) {
		t.Errorf("%d %+v", rec.Code, got)
	}
	if f.LastRange() != 5*time.Minute {
		t.Errorf("asked for %v", f.LastRange())
	}
}

func TestEndpointSeries(t *testing.T) {
	f := fake()
	var got endpointshttp.Series
	rec := get(t, serve(f), "/endpoints/"+url.PathEscape(users)+"/series?step=1m&from=-10m", &got)
	if rec.Code != http.StatusOK || got.Endpoint != users || got.Step != "1m" || len(got.Buckets) != 2 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	b := got.Buckets[1]
	if !b.End.Equal(b.Start.Add(time.Minute)) || b.Step != "1m" || b.Summary.Calls != 10 || b.Summary.Latency.P50 < 980 || !got.Buckets[0].Final {
		t.Errorf("buckets %+v", got.Buckets)
	}
	// Defaults as usage's series: the finest step, the last hour.
	get(t, serve(f), "/endpoints/"+url.PathEscape(users)+"/series", nil)
	if step, from, to := f.LastSeries(); step != time.Minute || to.Sub(from) != time.Hour {
		t.Errorf("defaults: step %v span %v", step, to.Sub(from))
	}
}

func TestEndpointListPagesInEveryOrder(t *testing.T) {
	s := serve(fake())
	for order, want := range map[string][]string{
		"":           {"GET /healthz", users, "DELETE /users/{id}", "POST /users", "GET /users/series"},
		"calls":      {"GET /healthz", users, "DELETE /users/{id}", "POST /users", "GET /users/series"},
		"p99":        {"POST /users", users, "GET /healthz", "DELETE /users/{id}", "GET /users/series"},
		"error_rate": {"POST /users", "DELETE /users/{id}", "GET /healthz", "GET /users/series", users},
	} {
		var names []string
		cursor := ""
		for range 10 {
			var page endpointshttp.EndpointPage
			rec := get(t, s, "/endpoints?limit=2&order="+order+"&cursor="+cursor, &page)
			if rec.Code != http.StatusOK || page.Total != 5 {
				t.Fatalf("order %q: %d %s", order, rec.Code, rec.Body)
			}
			for _, e := range page.Endpoints {
				names = append(names, e.Endpoint)
			}
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		if strings.Join(names, ",") != strings.Join(want, ",") {
			t.Errorf("order %q: %q, want %q", order, names, want)
		}
	}
	// The last page has no next cursor; an empty list is [].
	var page endpointshttp.EndpointPage
	if get(t, s, "/endpoints?limit=5", &page); page.NextCursor != "" || len(page.Endpoints) != 5 {
		t.Errorf("one full page: %+v", page)
	}
	if rec := get(t, serve(viewstest.NewEndpoints(nil)), "/endpoints", nil); !strings.Contains(rec.Body.String(), `"endpoints":[]`) {
		t.Errorf("empty table: %s", rec.Body)
	}
}

// Each 400 is a problem document that says what is wrong.
func TestEndpointRoutesRejectWhatCannotBeAnswered(t *testing.T) {
	s := serve(fake())
	callsCursor := endpointshttp.EncodeCursor(views.ByCalls, views.EndpointCursor{Value: 50, Endpoint: "POST /users"})
	ep := "/endpoints/" + url.PathEscape(users)
	for _, tc := range []struct{ path, says string }{
		{"/endpoints?order=latency", "order must be calls, p99 or error_rate"},
		{"/endpoints?limit=0", "limit must be an integer from 1 to 1000"},
		{"/endpoints?limit=1001", "limit must be an integer from 1 to 1000"},
		{"/endpoints?limit=ten", "limit must be an integer from 1 to 1000"},
		{"/endpoints?cursor=!!!", "cursor is not valid"},
		{"/endpoints?cursor=AQ", "cursor is not valid"},
		{"/endpoints?cursor=" + strings.Repeat("A", 800), "cursor is not valid"},
		{"/endpoints?order=p99&cursor=" + callsCursor, "cursor is not valid for this order"},
		{"/endpoints/" + strings.Repeat("x", 513), "at most 512 bytes"},
		{"/endpoints/%FF", "valid UTF-8"},
		{"/endpoints/" + strings.Repeat("x", 513) + "/series", "at most 512 bytes"},
		{ep + "?window=90s", "not a multiple of a kept step"},
		{ep + "?window=3y", "window must be a duration"},
		{ep + "?window=-5m", "window must be positive"},
		{ep + "?window=1000d", "within its retention"},
		{ep + "/series?step=5m", "step 5m is not kept"},
		{ep + "/series?step=fast", "step must be a duration"},
		{ep + "/series?from=-1h&to=-2h", "is after to"},
		{ep + "/series?from=-49h&to=-47h", "beyond the 1m buckets' retention of 2d"},
		{ep + "/series?from=-26h", "at most 1500 per query"},
		{ep + "/series?from=yesterday", "from must be now"},
		{ep + "/series?to=%2B1h", "to must be now"},
	} {
		rec := get(t, s, tc.path, nil)
		if rec.Code != http.StatusBadRequest || rec.Header().Get("Content-Type") != "application/problem+json" || !strings.Contains(rec.Body.String(), tc.says) {
			t.Errorf("%s = %d %s %s, want 400 saying %q", tc.path, rec.Code, rec.Header().Get("Content-Type"), rec.Body, tc.says)
		}
	}
	// A cursor of the same order is accepted.
	if rec := get(t, s, "/endpoints?cursor="+callsCursor, nil); rec.Code != http.StatusOK {
		t.Errorf("valid cursor = %d %s", rec.Code, rec.Body)
	}
}

// statusErr is a reader error that says how to answer, as routed reads do.
type statusErr struct{}

func (statusErr) Error() string             { return "internal: owner 10.9.9.9:1 refused" }
func (statusErr) Status() int               { return http.StatusServiceUnavailable }
func (statusErr) RetryAfter() time.Duration { return time.Second }
func (statusErr) PublicDetail() string      { return "rebalancing; retry later" }

func TestReaderErrorsSayHowToAnswer(t *testing.T) {
	f := fake()
	f.Err = statusErr{}
	s := serve(f)
	for _, path := range []string{"/endpoints", "/endpoints/" + url.PathEscape(users), "/endpoints/" + url.PathEscape(users) + "/series"} {
		rec := get(t, s, path, nil)
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" || strings.Contains(rec.Body.String(), "10.9.9.9") {
			t.Errorf("%s = %d Retry-After %q %s", path, rec.Code, rec.Header().Get("Retry-After"), rec.Body)
		}
	}
	f.Err = errors.New("disk on fire")
	if rec := get(t, s, "/endpoints/"+url.PathEscape(users), nil); rec.Code != http.StatusInternalServerError && rec.Code != http.StatusServiceUnavailable {
		t.Errorf("plain error = %d", rec.Code)
	}
	f.Err, f.NotRecovered = nil, true
	if rec := get(t, s, "/endpoints", nil); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("list before recovery = %d, want 503", rec.Code)
	}
}

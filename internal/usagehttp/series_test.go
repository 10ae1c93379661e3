package usagehttp_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/usagehttp"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/views/viewstest"
)

// newFakeWindows is alice's table with two minute buckets for any query.
func newFakeWindows() *viewstest.Windowed {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	usage := fakeUsage{"alice": {Client: "alice", Total: 9, Endpoints: map[string]*activitypb.EndpointUsage{"POST /users": {Count: 9}}}}
	return viewstest.NewWindowed(usage, []windows.Bucket{
		{Start: t0, Step: time.Minute, Total: 3, Endpoints: map[string]uint64{"GET /usage/{client}": 2, "POST /users": 1}, Final: true},
		{Start: t0.Add(time.Minute), Step: time.Minute, Total: 1, Endpoints: map[string]uint64{"POST /users": 1}},
	})
}

// seriesServer serves w, or alice's table without windows when w is nil.
func seriesServer(t *testing.T, w *viewstest.Windowed) http.Handler {
	t.Helper()
	if w == nil {
		return serve(t, newFakeWindows().Rows)
	}
	return serve(t, w)
}

func get(t *testing.T, s http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func TestSeriesAnswersBuckets(t *testing.T) {
	w := newFakeWindows()
	s := seriesServer(t, w)
	before := time.Now()
	rec := get(t, s, "/usage/alice/series?step=1h&from=-2d&to=-1h")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var got usagehttp.Series
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Client != "alice" || got.Step != "1h" || len(got.Buckets) != 2 || got.Buckets[0].Total != 3 || !got.Buckets[0].Final ||
		got.Buckets[1].Final || !got.Buckets[0].End.Equal(got.Buckets[0].Start.Add(time.Minute)) {
		t.Errorf("answer %+v", got)
	}
	// Relative times are resolved against one now.
	step, from, to := w.LastSeries()
	if step != time.Hour || to.Sub(from) != 47*time.Hour || to.After(time.Now().Add(-time.Hour)) || to.Before(before.Add(-time.Hour)) {
		t.Errorf("asked step %v from %s to %s", step, from, to)
	}
	if !got.From.Equal(from.UTC()) || !got.To.Equal(to.UTC()) {
		t.Errorf("answer's from/to %s %s, asked %s %s", got.From, got.To, from, to)
	}
	// Defaults: the finest step, the last hour; RFC 3339 is taken as given.
	rec = get(t, s, "/usage/alice/series")
	step, from, to = w.LastSeries()
	if rec.Code != http.StatusOK || step != time.Minute || to.Sub(from) != time.Hour {
		t.Errorf("defaults: %d step %v span %v", rec.Code, step, to.Sub(from))
	}
	at := time.Now().Add(-3 * time.Hour).UTC().Truncate(time.Second)
	rec = get(t, s, "/usage/alice/series?from="+url.QueryEscape(at.Format(time.RFC3339))+"&to="+url.QueryEscape(at.Add(time.Hour).Format(time.RFC3339)))
	_, from, to = w.LastSeries()
	if rec.Code != http.StatusOK || !from.Equal(at) || !to.Equal(at.Add(time.Hour)) {
		t.Errorf("RFC 3339: %d %s..%s: %s", rec.Code, from, to, rec.Body)
	}
}

// Each 400 is a problem document that says what is wrong.
func TestSeriesRejectsWhatCannotBeAnswered(t *testing.T) {
	s := seriesServer(t, newFakeWindows())
	old := url.QueryEscape(time.Now().Add(-49 * time.Hour).UTC().Format(time.RFC3339))
	for path, says := range map[string]string{
		"/usage/alice/series?step=5m":                     "step 5m is not kept",
		"/usage/alice/series?step=fast":                   "step must be a duration",
		"/usage/alice/series?from=-1h&to=-2h":             "is after to",
		"/usage/alice/series?from=-49h&to=-47h":           "beyond the 1m buckets' retention of 2d",
		"/usage/alice/series?from=" + old:                 "beyond the 1m buckets' retention",
		"/usage/alice/series?from=-100d&step=1h":          "beyond the 1h buckets' retention of 90d",
		"/usage/alice/series?from=-26h":                   "at most 1500 per query",
		"/usage/alice/series?from=yesterday":              "from must be now",
		"/usage/alice/series?to=%2B1h":                    "to must be now",
		"/usage/" + strings.Repeat("x", 257) + "/series":  "at most 256 bytes",
		"/usage/alice?window=90s":                         "not a multiple of a kept step",
		"/usage/alice?window=3y":                          "window must be a duration",
		"/usage/alice?window=1000d":                       "within its retention",
		"/usage/alice?window=-5m":                         "window must be positive",
		"/usage/alice/series?from=-1h&to=-1h&step=1500ms": "step 1.5s is not kept",
	} {
		rec := get(t, s, path)
		if rec.Code != http.StatusBadRequest || rec.Header().Get("Content-Type") != "application/problem+json" || !strings.Contains(rec.Body.String(), says) {
			t.Errorf("%s = %d %s %s, want 400 saying %q", path, rec.Code, rec.Header().Get("Content-Type"), rec.Body, says)
		}
	}
}

func TestUsageWindowKeepsTheUsageShape(t *testing.T) {
	w := newFakeWindows()
	s := seriesServer(t, w)
	rec := get(t, s, "/usage/alice?window=5m")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	eps, _ := got["endpoints"].(map[string]any)
	post, _ := eps["POST /users"].(map[string]any)
	if got["client"] != "alice" || got["total"] != 4.0 || post["count"] != 2.0 || got["window"] != "5m" || got["from"] == nil || got["to"] == nil {
		t.Errorf("answer %s", rec.Body)
	}
	if d := w.LastRange(); d != 5*time.Minute {
		t.Errorf("asked for %v", d)
	}
	if rec := get(t, s, "/usage/nobody?window=5m"); rec.Code != http.StatusNotFound {
		t.Errorf("unknown client with window = %d, want 404 as without", rec.Code)
	}
	// Without window, the all-time counts as before.
	if rec := get(t, s, "/usage/alice"); !strings.Contains(rec.Body.String(), `"total":9`) || strings.Contains(rec.Body.String(), `"window"`) {
		t.Errorf("without window: %s", rec.Body)
	}
}

// Without a windows reader (windows off) the routes say so.
func TestSeriesWithWindowsOff(t *testing.T) {
	s := seriesServer(t, nil)
	for _, path := range []string{"/usage/alice/series", "/usage/alice?window=5m"} {
		if rec := get(t, s, path); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "windows are off") {
			t.Errorf("%s = %d %s", path, rec.Code, rec.Body)
		}
	}
}

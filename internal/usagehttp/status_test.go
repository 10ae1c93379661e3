package usagehttp_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/views/viewstest"
)

// statusWindows is alice's table and buckets with status classes; one
// endpoint has calls without a status.
func statusWindows() *viewstest.Windowed {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	rows := viewstest.Rows{"alice": {Client: "alice", Total: 6, Endpoints: map[string]*activitypb.EndpointUsage{
		"GET /a":  {Count: 4, StatusClasses: []uint64{0, 3, 0, 1}},
		"POST /b": {Count: 2, StatusClasses: []uint64{0, 0, 0, 0, 1}},
		"GET /c":  {Count: 1}, // the original producer's: no status
	}}}
	return viewstest.NewWindowed(rows, []windows.Bucket{
		{Start: t0, Step: time.Minute, Total: 3, Endpoints: map[string]uint64{"GET /a": 2, "GET /c": 1}, Final: true,
			Status: map[string]codecs.StatusCounts{"GET /a": {codecs.Class2xx: 1, codecs.Class4xx: 1}}},
		{Start: t0.Add(time.Minute), Step: time.Minute, Total: 2, Endpoints: map[string]uint64{"GET /a": 1, "POST /b": 1},
			Status: map[string]codecs.StatusCounts{"GET /a": {codecs.Class2xx: 1}, "POST /b": {codecs.Class5xx: 1}}},
		{Start: t0.Add(2 * time.Minute), Step: time.Minute, Total: 1, Endpoints: map[string]uint64{"GET /c": 1}},
	})
}

// jsonOf decodes a body into generic JSON.
func jsonOf(t *testing.T, body string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// compact is v as JSON, for comparisons.
func compact(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// GET /usage/{client}, ?window= and /series show calls by status class per
// endpoint, and per client or bucket; no class without calls, no status
// where none is known.
func TestAnswersShowStatusClasses(t *testing.T) {
	s := seriesServer(t, statusWindows())
	// The client's classes, then each endpoint's JSON.
	for path, want := range map[string][4]string{
		"/usage/alice": {`{"2xx":3,"4xx":1,"5xx":1}`,
			`{"count":4,"service":"default","status":{"2xx":3,"4xx":1}}`, `{"count":2,"service":"default","status":{"5xx":1}}`, `{"count":1,"service":"default"}`},
		"/usage/alice?window=5m": {`{"2xx":2,"4xx":1,"5xx":1}`,
			`{"count":3,"service":"default","status":{"2xx":2,"4xx":1}}`, `{"count":1,"service":"default","status":{"5xx":1}}`, `{"count":2,"service":"default"}`},
	} {
		rec := get(t, s, path)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: status %d: %s", path, rec.Code, rec.Body)
		}
		got := jsonOf(t, rec.Body.String())
		eps := got["endpoints"].(map[string]any)
		for i, part := range []any{got["status"], eps["GET /a"], eps["POST /b"], eps["GET /c"]} {
			if compact(part) != want[i] {
				t.Errorf("%s: %s, want %s", path, compact(part), want[i])
			}
		}
	}

	rec := get(t, s, "/usage/alice/series")
	got := jsonOf(t, rec.Body.String())
	buckets := got["buckets"].([]any)
	want := []struct{ status, byEndpoint string }{
		{`{"2xx":1,"4xx":1}`, `{"GET /a":{"2xx":1,"4xx":1}}`},
		{`{"2xx":1,"5xx":1}`, `{"GET /a":{"2xx":1},"POST /b":{"5xx":1}}`},
		{`null`, `null`}, // no call of known status: neither field
	}
	for i, w := range want {
		b := buckets[i].(map[string]any)
		if compact(b["status"]) != w.status || compact(b["endpoint_status"]) != w.byEndpoint {
			t.Errorf("bucket %d: status %s endpoint_status %s, want %s %s", i, compact(b["status"]), compact(b["endpoint_status"]), w.status, w.byEndpoint)
		}
	}
}

// A table without classes (rows and buckets counted before they were kept)
// answers as before: no "status" anywhere.
func TestAnswersWithoutStatusClassesAsBefore(t *testing.T) {
	s := seriesServer(t, newFakeWindows())
	for _, path := range []string{"/usage/alice", "/usage/alice?window=5m", "/usage/alice/series"} {
		if rec := get(t, s, path); rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), "status") {
			t.Errorf("%s = %d %s", path, rec.Code, rec.Body)
		}
	}
}

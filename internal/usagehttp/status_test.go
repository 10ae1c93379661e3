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

// part is a part of an answer and the JSON it should be.
type part struct {
	got  any
	want string
}

func checkParts(t *testing.T, where string, parts []part) {
	t.Helper()
	for _, p := range parts {
		if compact(p.got) != p.want {
			t.Errorf("%s: %s, want %s", where, compact(p.got), p.want)
		}
	}
}

// GET /usage/{client}, ?window= and /series show calls by status class per
// endpoint, and per client or bucket; no class without calls, no status
// where none is known.
func TestAnswersShowStatusClasses(t *testing.T) {
	s := seriesServer(t, statusWindows())

	rec := get(t, s, "/usage/alice")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	got := jsonOf(t, rec.Body.String())
	eps := got["endpoints"].(map[string]any)
	checkParts(t, "GET /usage/alice", []part{
		{got["status"], `{"2xx":3,"4xx":1,"5xx":1}`},
		{eps["GET /a"], `{"count":4,"status":{"2xx":3,"4xx":1}}`},
		{eps["POST /b"], `{"count":2,"status":{"5xx":1}}`},
		{eps["GET /c"], `{"count":1}`},
	})

	rec = get(t, s, "/usage/alice?window=5m")
	got = jsonOf(t, rec.Body.String())
	eps = got["endpoints"].(map[string]any)
	checkParts(t, "?window=5m", []part{
		{got["status"], `{"2xx":2,"4xx":1,"5xx":1}`},
		{eps["GET /a"], `{"count":3,"status":{"2xx":2,"4xx":1}}`},
		{eps["POST /b"], `{"count":1,"status":{"5xx":1}}`},
		{eps["GET /c"], `{"count":2}`},
	})

	rec = get(t, s, "/usage/alice/series")
	got = jsonOf(t, rec.Body.String())
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

package loadgen

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fake is a small stand-in for Inarious: it counts every request under its
// X-Forwarded-For, shows a count in GET /usage/{client} only lag after the
// request, and keeps users in memory with revisions.
type fake struct {
	lag   time.Duration // counts show this long after the request (< 0: never)
	delay time.Duration // every request takes at least this long

	mu     sync.Mutex
	events map[string][]time.Time
	users  map[string]int // id -> revision
	emails map[string]bool
	nextID int
	bad    []string // protocol errors the load generator made
}

func newFake(t *testing.T, lag, delay time.Duration) (*fake, *httptest.Server) {
	f := &fake{lag: lag, delay: delay, events: map[string][]time.Time{}, users: map[string]int{}, emails: map[string]bool{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	t.Cleanup(func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, b := range f.bad {
			t.Errorf("fake server: %s", b)
		}
	})
	return f, srv
}

func (f *fake) badf(format string, a ...any) {
	f.bad = append(f.bad, fmt.Sprintf(format, a...))
}

func (f *fake) visible(client string, now time.Time) int {
	if f.lag < 0 {
		return 0
	}
	n := 0
	for _, t := range f.events[client] {
		if !t.Add(f.lag).After(now) {
			n++
		}
	}
	return n
}

func (f *fake) total(client string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.events[client])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	client := r.Header.Get("X-Forwarded-For")
	// Counted once the response is written, like the activity middleware.
	defer func() { f.events[client] = append(f.events[client], time.Now()) }()
	path := r.URL.Path
	switch {
	case path == "/healthz" && r.Method == http.MethodGet:
		writeJSON(w, 200, map[string]string{"status": "ok"})
	case path == "/usage" && r.Method == http.MethodGet:
		if r.URL.Query().Get("limit") != "50" {
			f.badf("GET /usage with limit %q, want 50", r.URL.Query().Get("limit"))
		}
		writeJSON(w, 200, map[string]any{"clients": []any{}, "total_clients": len(f.events), "next_cursor": ""})
	case strings.HasPrefix(path, "/usage/") && r.Method == http.MethodGet:
		c := strings.TrimPrefix(path, "/usage/")
		n := f.visible(c, now)
		if n == 0 {
			writeJSON(w, 404, map[string]string{"detail": "no usage"})
			return
		}
		writeJSON(w, 200, map[string]any{"client": c, "total": n, "endpoints": map[string]any{}})
	case path == "/users" && r.Method == http.MethodPost:
		if r.Header.Get("Content-Type") != "application/json" {
			f.badf("POST /users with Content-Type %q", r.Header.Get("Content-Type"))
		}
		var in struct{ Name, Email string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Name == "" || in.Email == "" {
			f.badf("POST /users body: %v %+v", err, in)
			writeJSON(w, 400, nil)
			return
		}
		if f.emails[in.Email] {
			f.badf("email %s used twice", in.Email)
			writeJSON(w, 409, nil)
			return
		}
		f.emails[in.Email] = true
		f.nextID++
		id := fmt.Sprintf("u%d", f.nextID)
		f.users[id] = 1
		w.Header().Set("ETag", `"1"`)
		writeJSON(w, 201, map[string]any{"id": id, "name": in.Name, "email": in.Email, "rev": "1"})
	case strings.HasPrefix(path, "/users/"):
		id := strings.TrimPrefix(path, "/users/")
		rev, ok := f.users[id]
		if !ok {
			f.badf("%s %s of a user that does not exist", r.Method, path)
			writeJSON(w, 404, nil)
			return
		}
		if r.Method != http.MethodGet && r.Header.Get("If-Match") != strconv.Quote(strconv.Itoa(rev)) {
			f.badf("%s %s with If-Match %q, current rev %d", r.Method, path, r.Header.Get("If-Match"), rev)
			writeJSON(w, 412, nil)
			return
		}
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, 200, map[string]any{"id": id, "rev": strconv.Itoa(rev)})
		case http.MethodPatch:
			if r.Header.Get("Content-Type") != "application/merge-patch+json" {
				f.badf("PATCH with Content-Type %q", r.Header.Get("Content-Type"))
			}
			f.users[id] = rev + 1
			writeJSON(w, 200, map[string]any{"id": id, "rev": strconv.Itoa(rev + 1)})
		case http.MethodDelete:
			delete(f.users, id)
			w.WriteHeader(204)
		default:
			writeJSON(w, 405, nil)
		}
	default:
		writeJSON(w, 404, nil)
	}
}

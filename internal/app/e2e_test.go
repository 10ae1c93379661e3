package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/internal/app/apptest"
)

// system is Inarious running in-process on the embedded broker.
type system struct{ *apptest.System }

func startSystem(t *testing.T, dataDir string) *system {
	t.Helper()
	return &system{apptest.Start(t, nil, apptest.WithDataDir(dataDir))}
}

var waitFor = apptest.WaitFor

func (s *system) call(t *testing.T, method, path, client, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, s.Base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if client != "" {
		req.Header.Set("X-Forwarded-For", client)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// usage reads GET /usage/{client}; nil when the client is unknown.
func (s *system) usage(t *testing.T, client string) *api.ClientUsage {
	t.Helper()
	resp, err := http.Get(s.Base + "/usage/" + client)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == 404 {
		return nil
	}
	var u api.ClientUsage
	if err := json.NewDecoder(resp.Body).Decode(&u); err != nil {
		t.Fatal(err)
	}
	return &u
}

// countsMatch reports whether client's usage is exactly want.
func (s *system) countsMatch(t *testing.T, client string, want map[string]uint64) bool {
	u := s.usage(t, client)
	if u == nil || len(u.Endpoints) != len(want) {
		return false
	}
	var total uint64
	for ep, n := range want {
		if u.Endpoints[ep].Count != n {
			return false
		}
		total += n
	}
	return u.Total == total
}

func TestEndToEndExactCountsPerClient(t *testing.T) {
	s := startSystem(t, t.TempDir())
	const clients, rounds = 5, 7
	want := map[string]map[string]uint64{}
	for c := 0; c < clients; c++ {
		client := fmt.Sprintf("198.51.100.%d", c+1)
		want[client] = map[string]uint64{}
		for r := 0; r < rounds+c; r++ {
			s.call(t, "GET", "/healthz", client, "")
			want[client]["GET /healthz"]++
			s.call(t, "GET", fmt.Sprintf("/users/id-%d", r), client, "") // ids must not explode the table
			want[client]["GET /users/{id}"]++
		}
		if c%2 == 0 {
			s.call(t, "POST", "/users", client, fmt.Sprintf(`{"name":"n%d","email":"u%d@example.com"}`, c, c))
			want[client]["POST /users"]++
		}
	}
	for client, w := range want {
		waitFor(t, 30*time.Second, "exact counts for "+client, func() bool { return s.countsMatch(t, client, w) })
	}
	// Reading usage is itself counted, so only now check the reader's own row.
	if u := s.usage(t, "127.0.0.1"); u != nil && u.Endpoints["GET /users/{id}"].Count != 0 {
		t.Errorf("forwarded calls were counted under the proxy: %+v", u)
	}
}

func TestCountsAndUsersSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	s := startSystem(t, dir)
	const client = "203.0.113.9"
	for i := 0; i < 4; i++ {
		s.call(t, "GET", "/healthz", client, "")
	}
	if code := s.call(t, "POST", "/users", client, `{"name":"Ada","email":"ada@example.com"}`); code != 201 {
		t.Fatalf("create user: %d", code)
	}
	want := map[string]uint64{"GET /healthz": 4, "POST /users": 1}
	waitFor(t, 30*time.Second, "counts before restart", func() bool { return s.countsMatch(t, client, want) })
	s.Stop()

	s = startSystem(t, dir)
	waitFor(t, 30*time.Second, "counts after restart", func() bool { return s.countsMatch(t, client, want) })
	if code := s.call(t, "POST", "/users", client, `{"name":"Ada","email":"ada@example.com"}`); code != 409 {
		t.Errorf("duplicate after restart: %d, want 409 (users lost?)", code)
	}
	want["POST /users"]++
	waitFor(t, 30*time.Second, "counting resumes after restart", func() bool { return s.countsMatch(t, client, want) })
}

package app_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/app/apptest"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/internal/usagehttp"
)

// system is Inarious running in-process on the embedded broker.
type system struct{ *apptest.System }

func startSystem(t *testing.T, dataDir string) *system {
	t.Helper()
	return &system{apptest.Start(t, nil, apptest.WithDataDir(dataDir))}
}

func (s *system) call(t *testing.T, method, path, client, body string) int {
	t.Helper()
	return callAs(t, method, s.Base+path, client, body).status
}

// usage reads GET /usage/{client}; nil when the client is unknown.
func (s *system) usage(t *testing.T, client string) *usagehttp.ClientUsage {
	t.Helper()
	resp, err := http.Get(s.Base + "/usage/" + client)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == 404 {
		return nil
	}
	var u usagehttp.ClientUsage
	if err := json.NewDecoder(resp.Body).Decode(&u); err != nil {
		t.Fatal(err)
	}
	return &u
}

// counts is a condition for testutil.Eventually: client's usage is exactly want.
func (s *system) counts(t *testing.T, client string, want map[string]uint64) func() (bool, string) {
	return func() (bool, string) {
		u := s.usage(t, client)
		if u == nil {
			return false, fmt.Sprintf("no usage of %s yet, want %v", client, want)
		}
		got := make(map[string]uint64, len(u.Endpoints))
		for ep, e := range u.Endpoints {
			got[ep] = e.Count
		}
		var total uint64
		for _, n := range want {
			total += n
		}
		return maps.Equal(got, want) && u.Total == total,
			fmt.Sprintf("usage of %s = %v (total %d), want %v (total %d)", client, got, u.Total, want, total)
	}
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
		testutil.Eventually(t, 30*time.Second, s.counts(t, client, w))
		// Every call in its status class: the users asked for do not exist.
		u := s.usage(t, client)
		classes := map[string]codecs.StatusCounts{
			"GET /healthz":    {codecs.Class2xx: w["GET /healthz"]},
			"GET /users/{id}": {codecs.Class4xx: w["GET /users/{id}"]},
			"POST /users":     {codecs.Class2xx: w["POST /users"]},
		}
		for ep := range w {
			if got := u.Endpoints[ep].Status; got != classes[ep] {
				t.Errorf("%s %s: classes %v, want %v", client, ep, got, classes[ep])
			}
		}
		if want := (codecs.StatusCounts{codecs.Class2xx: w["GET /healthz"] + w["POST /users"], codecs.Class4xx: w["GET /users/{id}"]}); u.Status != want {
			t.Errorf("%s: classes %v, want %v", client, u.Status, want)
		}
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
	testutil.Eventually(t, 30*time.Second, s.counts(t, client, want))
	s.Stop()

	s = startSystem(t, dir)
	testutil.Eventually(t, 30*time.Second, s.counts(t, client, want))
	if code := s.call(t, "POST", "/users", client, `{"name":"Ada","email":"ada@example.com"}`); code != 409 {
		t.Errorf("duplicate after restart: %d, want 409 (users lost?)", code)
	}
	want["POST /users"]++
	testutil.Eventually(t, 30*time.Second, s.counts(t, client, want))
}

package app_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/testutil"
)

// The original API's paths resolve: a trailing slash names the same
// resource (no 404, no redirect a POST would not survive), and GET / links
// to the rest.
func TestOriginalPathsResolve(t *testing.T) {
	s := startSystem(t, t.TempDir())
	steps := []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/", "", http.StatusOK},
		{"POST", "/users/", `{"name":"Ada","email":"ada@example.com"}`, http.StatusCreated},
		{"GET", "/users/", "", http.StatusOK},
		{"GET", "/users", "", http.StatusOK},
		{"GET", "/healthz/", "", http.StatusOK},
		{"GET", "/no/such/thing/", "", http.StatusNotFound},
	}
	for _, st := range steps {
		if got := s.call(t, st.method, st.path, "10.4.0.1", st.body); got != st.want {
			t.Errorf("%s %s = %d, want %d", st.method, st.path, got, st.want)
		}
	}
	// Counted under the route either way.
	testutil.Eventually(t, 30*time.Second, s.counts(t, "10.4.0.1", map[string]uint64{
		"GET /": 1, "POST /users": 1, "GET /users": 2, "GET /healthz": 1, "GET (unmatched)": 1,
	}))
}

package userhttp_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/problem"
	"github.com/inarious/inarious/internal/users"
	"github.com/inarious/inarious/internal/users/boltstore"
	"github.com/inarious/inarious/internal/users/userhttp"
)

func newBoltStore(t *testing.T) users.Store {
	t.Helper()
	s, err := boltstore.Open(filepath.Join(t.TempDir(), "users.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// server wires the handlers on a fresh bolt store.
func server(t *testing.T, opts ...userhttp.Option) http.Handler {
	t.Helper()
	r := mux.NewRouter()
	httpx.Mount(r, userhttp.Routes(newBoltStore(t), opts...))
	return r
}

type req struct {
	method, path, body string
	header             map[string]string
}

func do(t *testing.T, h http.Handler, rq req) *httptest.ResponseRecorder {
	t.Helper()
	var body io.Reader
	if rq.body != "" {
		body = strings.NewReader(rq.body)
	}
	r := httptest.NewRequest(rq.method, rq.path, body)
	if rq.body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range rq.header {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func wantStatus(t *testing.T, w *httptest.ResponseRecorder, status int) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status = %d, want %d; body %s", w.Code, status, w.Body)
	}
}

// wantProblem checks status and the problem+json shape and returns it.
func wantProblem(t *testing.T, w *httptest.ResponseRecorder, status int) problem.Details {
	t.Helper()
	wantStatus(t, w, status)
	if ct := w.Header().Get("Content-Type"); ct != problem.ContentType {
		t.Fatalf("Content-Type = %q, want %q", ct, problem.ContentType)
	}
	var d problem.Details
	if err := json.Unmarshal(w.Body.Bytes(), &d); err != nil {
		t.Fatalf("problem body %q: %v", w.Body, err)
	}
	if d.Status != status || d.Detail == "" {
		t.Fatalf("problem = %+v", d)
	}
	return d
}

func decodeUser(t *testing.T, w *httptest.ResponseRecorder) users.User {
	t.Helper()
	var u users.User
	if err := json.Unmarshal(w.Body.Bytes(), &u); err != nil {
		t.Fatalf("user body %q: %v", w.Body, err)
	}
	if got, want := w.Header().Get("ETag"), `"`+u.Rev+`"`; u.Rev == "" || got != want {
		t.Fatalf("ETag = %q, want %q", got, want)
	}
	return u
}

func create(t *testing.T, h http.Handler, name, email string) users.User {
	t.Helper()
	body, _ := json.Marshal(users.NewUser{Name: name, Email: email})
	w := do(t, h, req{method: "POST", path: "/users", body: string(body)})
	wantStatus(t, w, http.StatusCreated)
	return decodeUser(t, w)
}

func etag(u users.User) map[string]string { return map[string]string{"If-Match": `"` + u.Rev + `"`} }

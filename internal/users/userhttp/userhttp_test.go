package userhttp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/users"
	"github.com/inarious/inarious/internal/users/userhttp"
)

func TestLifecycle(t *testing.T) {
	h := server(t)
	w := do(t, h, req{method: "POST", path: "/users", body: `{"name":"Ann","email":"ann@example.com"}`})
	wantStatus(t, w, http.StatusCreated)
	u := decodeUser(t, w)
	if loc := w.Header().Get("Location"); loc != "/users/"+u.ID {
		t.Errorf("Location = %q, want /users/%s", loc, u.ID)
	}
	if u.Name != "Ann" || u.Email != "ann@example.com" || !users.ValidID(u.ID) {
		t.Errorf("created %+v", u)
	}

	w = do(t, h, req{method: "GET", path: "/users/" + u.ID})
	wantStatus(t, w, http.StatusOK)
	if got := decodeUser(t, w); got.Rev != u.Rev || got.Name != "Ann" {
		t.Errorf("GET = %+v, want %+v", got, u)
	}

	w = do(t, h, req{method: "PUT", path: "/users/" + u.ID, body: `{"name":"Anna","email":"anna@example.com"}`, header: etag(u)})
	wantStatus(t, w, http.StatusOK)
	put := decodeUser(t, w)
	if put.Name != "Anna" || put.Email != "anna@example.com" || put.Rev == u.Rev {
		t.Errorf("PUT = %+v", put)
	}

	w = do(t, h, req{method: "PATCH", path: "/users/" + u.ID, body: `{"name":"Annie"}`,
		header: map[string]string{"Content-Type": "application/merge-patch+json", "If-Match": `"` + put.Rev + `"`}})
	wantStatus(t, w, http.StatusOK)
	patched := decodeUser(t, w)
	if patched.Name != "Annie" || patched.Email != "anna@example.com" || patched.Rev == put.Rev {
		t.Errorf("PATCH = %+v", patched)
	}

	w = do(t, h, req{method: "DELETE", path: "/users/" + u.ID, header: etag(patched)})
	wantStatus(t, w, http.StatusNoContent)
	if w.Body.Len() != 0 {
		t.Errorf("204 with body %q", w.Body)
	}
	wantProblem(t, do(t, h, req{method: "GET", path: "/users/" + u.ID}), http.StatusNotFound)
}

func TestCreateRejects(t *testing.T) {
	h := server(t, userhttp.WithMaxBodyBytes(256))
	create(t, h, "Taken", "taken@example.com")
	big := `{"name":"` + strings.Repeat("a", 300) + `","email":"a@example.com"}`
	cases := []struct {
		name, body string
		header     map[string]string
		status     int
	}{
		{"malformed", `{"name":`, nil, 400},
		{"not json", `hello`, nil, 400},
		{"unknown field", `{"name":"A","email":"a@example.com","admin":true}`, nil, 400},
		{"trailing object", `{"name":"A","email":"a@example.com"}{}`, nil, 400},
		{"trailing garbage", `{"name":"A","email":"a@example.com"} x`, nil, 400},
		{"array", `[{"name":"A","email":"a@example.com"}]`, nil, 400},
		{"null", `null`, nil, 400},
		{"wrong type", `{"name":5,"email":"a@example.com"}`, nil, 400},
		{"empty body", ``, map[string]string{"Content-Type": "application/json"}, 400},
		{"too large", big, nil, 413},
		{"text/plain", `{"name":"A","email":"a@example.com"}`, map[string]string{"Content-Type": "text/plain"}, 415},
		{"no content type", `{"name":"A","email":"a@example.com"}`, map[string]string{"Content-Type": ""}, 415},
		{"merge-patch on POST", `{"name":"A","email":"a@example.com"}`, map[string]string{"Content-Type": "application/merge-patch+json"}, 415},
		{"latin1 charset", `{"name":"A","email":"a@example.com"}`, map[string]string{"Content-Type": "application/json; charset=latin1"}, 415},
		{"duplicate email", `{"name":"B","email":"TAKEN@example.com"}`, nil, 409},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, do(t, h, req{method: "POST", path: "/users", body: tc.body, header: tc.header}), tc.status)
		})
	}
	// Nothing above may have been stored.
	w := do(t, h, req{method: "GET", path: "/users"})
	if !strings.Contains(w.Body.String(), "Taken") || strings.Count(w.Body.String(), `"id"`) != 1 {
		t.Errorf("store changed by rejected requests: %s", w.Body)
	}
	ok := do(t, h, req{method: "POST", path: "/users", body: `{"name":"Cy","email":"cy@example.com"}`,
		header: map[string]string{"Content-Type": "application/json; charset=UTF-8"}})
	wantStatus(t, ok, http.StatusCreated)
}

func TestValidationErrorsPerField(t *testing.T) {
	h := server(t)
	w := do(t, h, req{method: "POST", path: "/users", body: `{"name":" Ann","email":"Ann <ann@example.com>"}`})
	d := wantProblem(t, w, http.StatusBadRequest)
	if d.Errors["name"] == "" || d.Errors["email"] == "" || len(d.Errors) != 2 {
		t.Errorf("errors = %v, want name and email", d.Errors)
	}
	u := create(t, h, "Ann", "ann@example.com")
	w = do(t, h, req{method: "PATCH", path: "/users/" + u.ID, body: `{"name":null,"email":"bad"}`})
	d = wantProblem(t, w, http.StatusBadRequest)
	if !strings.Contains(d.Errors["name"], "null") {
		t.Errorf("null name: errors = %v, want a message about null", d.Errors)
	}
	// A merge patch must be an object; null or [] would otherwise be a no-op write.
	for _, body := range []string{`null`, `[]`, `"x"`} {
		w = do(t, h, req{method: "PATCH", path: "/users/" + u.ID, body: body, header: etag(u)})
		if d = wantProblem(t, w, http.StatusBadRequest); d.Detail != "request body must be a JSON object" {
			t.Errorf("PATCH %s: detail %q", body, d.Detail)
		}
	}
	w = do(t, h, req{method: "PATCH", path: "/users/" + u.ID, body: `{"email":"bad"}`})
	if d = wantProblem(t, w, http.StatusBadRequest); d.Errors["email"] == "" {
		t.Errorf("bad email: errors = %v", d.Errors)
	}
	w = do(t, h, req{method: "PUT", path: "/users/" + u.ID, body: `{"name":"Ann"}`})
	if d = wantProblem(t, w, http.StatusBadRequest); d.Errors["email"] == "" {
		t.Errorf("PUT without email: errors = %v", d.Errors)
	}
	w = do(t, h, req{method: "GET", path: "/users/" + u.ID})
	if got := decodeUser(t, w); got.Rev != u.Rev {
		t.Error("rejected requests changed the revision")
	}
}

func TestUpdateConflictsAndPreconditions(t *testing.T) {
	h := server(t)
	a := create(t, h, "Ann", "ann@example.com")
	b := create(t, h, "Bob", "bob@example.com")
	path := "/users/" + b.ID

	wantProblem(t, do(t, h, req{method: "PUT", path: path, body: `{"name":"Bob","email":"ann@example.com"}`}), 409)
	wantProblem(t, do(t, h, req{method: "PATCH", path: path, body: `{"email":"ANN@example.com"}`}), 409)

	// Move b on, then every write with the old ETag is stale.
	w := do(t, h, req{method: "PATCH", path: path, body: `{"name":"Robert"}`, header: etag(b)})
	wantStatus(t, w, http.StatusOK)
	cur := decodeUser(t, w)
	stale := etag(b)
	wantProblem(t, do(t, h, req{method: "PUT", path: path, body: `{"name":"X","email":"x@example.com"}`, header: stale}), 412)
	wantProblem(t, do(t, h, req{method: "PATCH", path: path, body: `{"name":"X"}`, header: stale}), 412)
	wantProblem(t, do(t, h, req{method: "DELETE", path: path, header: stale}), 412)
	weak := map[string]string{"If-Match": `W/"` + cur.Rev + `"`}
	wantProblem(t, do(t, h, req{method: "DELETE", path: path, header: weak}), 412)
	for _, bad := range []string{cur.Rev, `"a", "b"`, `""`} {
		wantProblem(t, do(t, h, req{method: "DELETE", path: path, header: map[string]string{"If-Match": bad}}), 400)
	}
	// "*" only needs the user to exist.
	wantStatus(t, do(t, h, req{method: "PATCH", path: path, body: `{}`, header: map[string]string{"If-Match": "*"}}), 200)

	w = do(t, h, req{method: "GET", path: "/users/" + a.ID})
	if got := decodeUser(t, w); got.Rev != a.Rev {
		t.Errorf("a was changed by b's rejected writes")
	}
}

func TestNotFound(t *testing.T) {
	h := server(t)
	create(t, h, "Ann", "ann@example.com")
	for _, id := range []string{users.NewID(), "nope", "0000000000000000000000000Z"} {
		path := "/users/" + id
		wantProblem(t, do(t, h, req{method: "GET", path: path}), 404)
		wantProblem(t, do(t, h, req{method: "PUT", path: path, body: `{"name":"A","email":"a@example.com"}`}), 404)
		wantProblem(t, do(t, h, req{method: "PATCH", path: path, body: `{"name":"A"}`}), 404)
		wantProblem(t, do(t, h, req{method: "DELETE", path: path}), 404)
	}
}

func TestPatchContentTypes(t *testing.T) {
	h := server(t)
	u := create(t, h, "Ann", "ann@example.com")
	path := "/users/" + u.ID
	for _, ct := range []string{"application/json", "application/merge-patch+json"} {
		w := do(t, h, req{method: "PATCH", path: path, body: `{"name":"` + ct + `"}`, header: map[string]string{"Content-Type": ct}})
		wantStatus(t, w, 200)
		if got := decodeUser(t, w); got.Name != ct {
			t.Errorf("name = %q after PATCH as %s", got.Name, ct)
		}
	}
	wantProblem(t, do(t, h, req{method: "PATCH", path: path, body: `{"name":"X"}`,
		header: map[string]string{"Content-Type": "application/json-patch+json"}}), 415)
}

func TestList(t *testing.T) {
	h := server(t)
	want := map[string]bool{}
	for _, e := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		want[create(t, h, "User "+e, e+"@example.com").ID] = true
	}
	var resp struct {
		Users      []users.User `json:"users"`
		NextCursor *string      `json:"next_cursor"`
	}
	seen := map[string]bool{}
	sizes := []int{}
	path := "/users?limit=3"
	for range 10 {
		w := do(t, h, req{method: "GET", path: path})
		wantStatus(t, w, 200)
		resp.Users, resp.NextCursor = nil, nil
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatal(err)
		}
		if resp.NextCursor == nil {
			t.Fatalf("next_cursor missing from %s", w.Body)
		}
		sizes = append(sizes, len(resp.Users))
		for _, u := range resp.Users {
			if seen[u.ID] || !want[u.ID] {
				t.Fatalf("unexpected or repeated id %s", u.ID)
			}
			seen[u.ID] = true
		}
		if *resp.NextCursor == "" {
			break
		}
		path = "/users?limit=3&cursor=" + *resp.NextCursor
	}
	if len(seen) != len(want) || len(sizes) != 3 || sizes[2] != 1 {
		t.Errorf("saw %d of %d users in pages %v, want [3 3 1]", len(seen), len(want), sizes)
	}

	w := do(t, h, req{method: "GET", path: "/users"}) // default limit 50 covers all
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || len(resp.Users) != 7 || *resp.NextCursor != "" {
		t.Errorf("default page: %d users, err %v", len(resp.Users), err)
	}
	for _, q := range []string{"limit=0", "limit=-1", "limit=501", "limit=abc", "cursor=nope"} {
		wantProblem(t, do(t, h, req{method: "GET", path: "/users?" + q}), 400)
	}
	wantStatus(t, do(t, h, req{method: "GET", path: "/users?limit=500"}), 200)

	empty := server(t)
	w = do(t, empty, req{method: "GET", path: "/users"})
	if got := strings.TrimSpace(w.Body.String()); got != `{"users":[],"next_cursor":""}` {
		t.Errorf("empty list body = %s", got)
	}
}

// failingStore returns an internal error that must never reach the client.
type failingStore struct{ users.Store }

var errSecret = errors.New("dial tcp 10.0.0.7:8529: password=hunter2")

func (failingStore) Get(context.Context, string) (users.User, error) { return users.User{}, errSecret }
func (failingStore) List(context.Context, users.ListOptions) (users.Page, error) {
	return users.Page{}, errSecret
}
func (failingStore) Create(context.Context, users.NewUser) (users.User, error) {
	return users.User{}, errSecret
}

func TestInternalErrorsAreLoggedNotSent(t *testing.T) {
	var logs bytes.Buffer
	r := mux.NewRouter()
	httpx.Mount(r, userhttp.Routes(failingStore{}, userhttp.WithLogger(slog.New(slog.NewTextHandler(&logs, nil)))))
	for _, rq := range []req{
		{method: "GET", path: "/users/" + users.NewID()},
		{method: "GET", path: "/users"},
		{method: "POST", path: "/users", body: `{"name":"A","email":"a@example.com"}`},
	} {
		logs.Reset()
		w := do(t, r, rq)
		d := wantProblem(t, w, 500)
		if strings.Contains(w.Body.String(), "hunter2") || d.Detail != "internal server error" {
			t.Errorf("%s %s leaked: %s", rq.method, rq.path, w.Body)
		}
		if !strings.Contains(logs.String(), "hunter2") {
			t.Errorf("%s %s: cause not logged: %q", rq.method, rq.path, logs.String())
		}
	}
}

func TestRouteTemplatesAndPrefix(t *testing.T) {
	r := mux.NewRouter()
	var templates []string
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			tpl, _ := mux.CurrentRoute(req).GetPathTemplate()
			templates = append(templates, tpl)
			next.ServeHTTP(w, req)
		})
	})
	httpx.Mount(r.PathPrefix("/v1").Subrouter(), userhttp.Routes(newBoltStore(t)))
	w := do(t, r, req{method: "POST", path: "/v1/users", body: `{"name":"Ann","email":"ann@example.com"}`})
	wantStatus(t, w, 201)
	loc := w.Header().Get("Location")
	if !strings.HasPrefix(loc, "/v1/users/") {
		t.Fatalf("Location = %q, want the /v1 prefix", loc)
	}
	wantStatus(t, do(t, r, req{method: "GET", path: loc}), 200)
	if strings.Join(templates, " ") != "/v1/users /v1/users/{id}" {
		t.Errorf("templates seen by middleware = %v", templates)
	}
}

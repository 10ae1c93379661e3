package userhttp_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/problem"
	"github.com/inarious/inarious/internal/users"
	"github.com/inarious/inarious/internal/users/boltstore"
	"github.com/inarious/inarious/internal/users/userhttp"
)

// fuzzMaxBody is small so the fuzzer reaches the 413 path too.
const fuzzMaxBody = 1 << 10

// FuzzUserJSON sends arbitrary bodies, content types and If-Match values to
// POST /users, PUT /users/{id} and PATCH /users/{id} on a real bolt store.
// Properties: no panic and no 5xx; a 2xx carries a valid user (and, for
// POST/PUT, exactly the name and email encoding/json reads from the body);
// a 4xx is a problem+json document with that status.
func FuzzUserJSON(f *testing.F) {
	s, err := boltstore.Open(filepath.Join(f.TempDir(), "users.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	r := mux.NewRouter()
	httpx.Mount(r, userhttp.Routes(s, userhttp.WithMaxBodyBytes(fuzzMaxBody)))

	// One user every PUT and PATCH targets.
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, jsonRequest(http.MethodPost, "/users", "application/json", `{"name":"Target","email":"target@example.com"}`))
	if rec.Code != http.StatusCreated {
		f.Fatalf("create target: %d %s", rec.Code, rec.Body)
	}
	var target users.User
	if err := json.Unmarshal(rec.Body.Bytes(), &target); err != nil {
		f.Fatal(err)
	}
	item := "/users/" + target.ID

	for _, seed := range []struct {
		op          uint8
		ct, ifMatch string
		body        string
	}{
		{0, "application/json", "", `{"name":"Ann","email":"ann@example.com"}`},
		{0, "application/json; charset=utf-8", "", `{"name":"Bob","email":"bob@example.com","x":1}`},
		{0, "application/json", "", `{"name":"Ann","email":"ann@example.com"}{}`},
		{0, "application/json", "", `{"name":"Ann","name":"Eve","email":"eve@example.com"}`},
		{0, "application/json", "", `{"NAME":"Caps","EMAIL":"caps@example.com"}`},
		{0, "application/json", "", `{"name":"\ud800","email":"surrogate@example.com"}`},
		{0, "application/json", "", "{\"name\":\"\xff\",\"email\":\"bad@example.com\"}"},
		{0, "application/json", "", `{"name":"\ud83d\ude00","email":"pair@example.com"}`},
		{0, "application/json", "", `{"name":"\\ud800","email":"literal@example.com"}`},
		{0, "application/json", "", `{"name":"\udc00","email":"low@example.com"}`},
		{0, "application/json", "", `{"name":"\ud800\u0041","email":"unpaired@example.com"}`},
		{0, "application/json", "", `{"email":"end@example.com","name":"\ud800"}`},
		{0, "application/json", "", `{"name":"\uFFFD","email":"replacement@example.com"}`},
		{0, "application/json", "", `{"name":" padded ","email":"Ann <ann@example.com>"}`},
		{0, "application/json", "", `{"name":1,"email":true}`},
		{0, "application/json", "", `[` + strings.Repeat("[", 2000)},
		{0, "text/plain", "", `{"name":"Ann","email":"ann@example.com"}`},
		{0, "application/json; charset=latin1", "", `{}`},
		{0, "application/json", "", `null`},
		{0, "application/json", "", ``},
		{0, "application/json", "", `{"name":"` + strings.Repeat("a", 2000) + `"}`},
		{1, "application/json", "", `{"name":"Target","email":"target@example.com"}`},
		{1, "application/json", "*", `{"name":"T2","email":"t2@example.com"}`},
		{1, "application/json", `"nope"`, `{"name":"T3","email":"t3@example.com"}`},
		{1, "application/json", `W/"x"`, `{"name":"T3","email":"t3@example.com"}`},
		{1, "application/json", `"a","b"`, `{"name":"T3"}`},
		{2, "application/merge-patch+json", "", `{"name":"Patched"}`},
		{2, "application/merge-patch+json", "", `{"email":null}`},
		{2, "application/json", "*", `{}`},
		{2, "application/json", "", `{"name":{"nested":1}}`},
		{2, "application/merge-patch+json", "", `{"email":"ann@example.com"}`},
	} {
		f.Add(seed.op, seed.ct, seed.ifMatch, []byte(seed.body))
	}

	f.Fuzz(func(t *testing.T, op uint8, ct, ifMatch string, body []byte) {
		var method, path string
		switch op % 3 {
		case 0:
			method, path = http.MethodPost, "/users"
		case 1:
			method, path = http.MethodPut, item
		default:
			method, path = http.MethodPatch, item
		}
		req := jsonRequest(method, path, ct, string(body))
		if ifMatch != "" {
			req.Header.Set("If-Match", ifMatch)
		}
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req) // a panic fails the fuzz run by itself

		switch code := rec.Code; {
		case code >= 500:
			t.Fatalf("%s %s (ct %q, If-Match %q, body %q) = %d %s", method, path, ct, ifMatch, body, code, rec.Body)
		case code >= 200 && code < 300:
			var u users.User
			if err := json.Unmarshal(rec.Body.Bytes(), &u); err != nil {
				t.Fatalf("%d body is not a user: %v: %q", code, err, rec.Body)
			}
			if err := (users.NewUser{Name: u.Name, Email: u.Email}).Validate(); err != nil {
				t.Fatalf("%s stored an invalid user %+v from %q: %v", method, u, body, err)
			}
			if !users.ValidID(u.ID) || u.Rev == "" {
				t.Fatalf("user without id or rev: %+v", u)
			}
			if method != http.MethodPatch {
				// Nothing the client did not send: encoding/json turns bad
				// UTF-8 and lone surrogate escapes into U+FFFD silently.
				if strings.ContainsRune(u.Name+u.Email, utf8.RuneError) &&
					!bytes.Contains(body, []byte("\uFFFD")) && !bytes.Contains(bytes.ToLower(body), []byte(`\ufffd`)) {
					t.Fatalf("%s %q stored U+FFFD: %+v", method, body, u)
				}
				var want users.NewUser
				if err := json.Unmarshal(body, &want); err != nil {
					t.Fatalf("%s accepted %q that encoding/json rejects: %v", method, body, err)
				}
				if want.Name != u.Name || want.Email != u.Email {
					t.Fatalf("%s %q stored name %q email %q", method, body, u.Name, u.Email)
				}
			}
		case code >= 400 && code < 500:
			if got := rec.Header().Get("Content-Type"); got != problem.ContentType {
				t.Fatalf("%d with Content-Type %q: %q", code, got, rec.Body)
			}
			var d problem.Details
			if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil || d.Status != code || d.Title == "" {
				t.Fatalf("%d problem body %q: %+v, %v", code, rec.Body, d, err)
			}
			switch code {
			case 400, 409, 412, 413, 415:
			case 404:
				// Only PUT/PATCH of a user deleted meanwhile could 404; none is.
				t.Fatalf("%s %s = 404: %q", method, path, rec.Body)
			default:
				t.Fatalf("%s %s = unexpected %d: %q", method, path, code, rec.Body)
			}
		default:
			t.Fatalf("%s %s = unexpected %d", method, path, code)
		}
	})
}

func jsonRequest(method, path, ct, body string) *http.Request {
	req := httptest.NewRequest(method, path, bytes.NewReader([]byte(body)))
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	return req
}

// TestBodiesMustBeWellFormedUnicode pins what FuzzUserJSON found: bad UTF-8
// and unpaired surrogate escapes are rejected rather than stored as U+FFFD.
func TestBodiesMustBeWellFormedUnicode(t *testing.T) {
	h := server(t)
	u := create(t, h, "Ann", "ann@example.com")
	for _, c := range []struct {
		body   string
		status int
		name   string
	}{
		{`{"name":"\ud83d\ude00","email":"pair@example.com"}`, 201, "😀"},
		{`{"name":"\\ud800","email":"literal@example.com"}`, 201, `\ud800`},
		{`{"name":"\uFFFD","email":"replacement@example.com"}`, 201, "\uFFFD"},
		{`{"name":"a\\\ud83d\ude00","email":"slashpair@example.com"}`, 201, `a\😀`},
		{"{\"name\":\"A\xffB\",\"email\":\"bytes@example.com\"}", 400, ""},
		{"{\"name\":\"\xed\xa0\x80\",\"email\":\"cesu@example.com\"}", 400, ""},
		{`{"name":"\ud800","email":"high@example.com"}`, 400, ""},
		{`{"name":"\udc00","email":"low@example.com"}`, 400, ""},
		{`{"name":"\ud800\u0041","email":"unpaired@example.com"}`, 400, ""},
		{`{"name":"\ud800\ud800","email":"twohigh@example.com"}`, 400, ""},
		{`{"name":"a\\\ud800","email":"slash@example.com"}`, 400, ""},
		{`{"name":"Ann","email":"x@example.com","x":"\udfff"}`, 400, ""},
	} {
		w := do(t, h, req{method: "POST", path: "/users", body: c.body})
		if c.status == 201 {
			wantStatus(t, w, 201)
			if got := decodeUser(t, w); got.Name != c.name {
				t.Errorf("%s: name %q, want %q", c.body, got.Name, c.name)
			}
			continue
		}
		wantProblem(t, w, c.status)
	}
	w := do(t, h, req{method: "PATCH", path: "/users/" + u.ID, body: `{"name":"\udbff"}`})
	wantProblem(t, w, 400)
}

package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/problem"
	"github.com/inarious/inarious/internal/users"
	"github.com/inarious/inarious/internal/users/boltstore"
	"github.com/inarious/inarious/internal/users/userhttp"
)

// discardEmitter accepts every event and keeps none, so a long fuzz run
// does not grow memory the way fakeEmitter's record would.
type discardEmitter struct{}

func (discardEmitter) Emit(string, any) (*goka.Promise, error) {
	p, finish := goka.NewPromiseWithFinisher()
	finish(nil, nil)
	return p, nil
}

func (discardEmitter) Finish() error { return nil }

// FuzzPathParams sends arbitrary bytes, path-escaped, as the {id} of
// /users/{id} and the {client} of /usage/{client} through the full router
// (usage routes, users routes on a bolt store, activity middleware), parsed
// from the wire by net/http as the server would. Properties: no panic, no
// 5xx, the status is one the route can give, and every 4xx is problem+json.
func FuzzPathParams(f *testing.F) {
	store, err := boltstore.Open(filepath.Join(f.TempDir(), "users.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	pub := api.NewPublisher(discardEmitter{}, 1024)
	f.Cleanup(func() { _ = pub.Close(context.Background()) })
	cr, err := api.NewClientResolver(nil)
	if err != nil {
		f.Fatal(err)
	}
	usage := fakeUsage{
		"192.0.2.1": {Client: "192.0.2.1", Total: 1},
		"ünïcode":   {Client: "ünïcode", Total: 2},
		"a/b":       {Client: "a/b", Total: 3},
	}
	srv, err := newAPI(usage, pub, cr, api.WithRoutes(userhttp.Routes(store)...))
	if err != nil {
		f.Fatal(err)
	}
	u, err := store.Create(context.Background(), users.NewUser{Name: "Ann", Email: "ann@example.com"})
	if err != nil {
		f.Fatal(err)
	}

	for _, seed := range []string{
		"", "192.0.2.1", "ünïcode", "a/b", u.ID, strings.ToLower(u.ID), "..", ".", "../..", "..%2f",
		"\xff", "\xff\xfe", "%ff", "\x00", "\r\n", " ", "?", "#", "%", "%%", "a b", "\u202e",
		strings.Repeat("x", 257), strings.Repeat("é", 129), strings.Repeat("A", 10000), "/", "//x", "users/1",
	} {
		f.Add(uint8(0), seed)
		f.Add(uint8(1), seed)
	}

	f.Fuzz(func(t *testing.T, which uint8, param string) {
		methods := []string{http.MethodGet, http.MethodHead, http.MethodDelete, http.MethodPut, http.MethodPatch}
		var prefix, method string
		var allowed map[int]bool
		if which%2 == 0 {
			prefix, method = "/usage/", methods[int(which/2)%2] // GET or HEAD
			allowed = map[int]bool{200: true, 301: true, 400: true, 404: true}
		} else {
			prefix, method = "/users/", methods[int(which/2)%len(methods)]
			// Deleting or changing the one real user is fine; every other id is 404.
			allowed = map[int]bool{200: true, 204: true, 301: true, 400: true, 404: true, 405: true, 412: true, 415: true}
		}
		target := prefix + url.PathEscape(param)
		raw := method + " " + target + " HTTP/1.1\r\nHost: example.com\r\n"
		if method == http.MethodPut || method == http.MethodPatch {
			raw += "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
		} else {
			raw += "\r\n"
		}
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			t.Fatalf("escaped target %q does not parse: %v", target, err)
		}
		req.RemoteAddr = "192.0.2.9:1234"
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)

		code := rec.Code
		if code >= 500 || !allowed[code] {
			t.Fatalf("%s %s = %d %q", method, target, code, rec.Body)
		}
		if code == http.StatusMovedPermanently {
			return // the router's redirect to the cleaned path
		}
		if code >= 400 && method != http.MethodHead {
			var d problem.Details
			if ct := rec.Header().Get("Content-Type"); ct != problem.ContentType {
				t.Fatalf("%s %s = %d with Content-Type %q", method, target, code, ct)
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil || d.Status != code {
				t.Fatalf("%s %s = %d, problem %q: %v", method, target, code, rec.Body, err)
			}
		}
		// "/usage/" is the list, as "/users/" is "/users".
		if code == http.StatusOK && prefix == "/usage/" && param != "" && method == http.MethodGet {
			var cu codecs.UsageDoc
			if err := json.Unmarshal(rec.Body.Bytes(), &cu); err != nil || usage[cu.Client] == nil {
				t.Fatalf("GET %s = 200 %q: %v", target, rec.Body, err)
			}
		}
		if rec.Header().Get("X-Request-Id") == "" {
			t.Fatalf("%s %s: no X-Request-Id, activity middleware skipped", method, target)
		}
	})
}

package auth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/auth"
	"github.com/inarious/inarious/internal/dashboard"
	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/problem"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/internal/usagehttp"
	"github.com/inarious/inarious/internal/users/userhttp"
	"github.com/inarious/inarious/views/viewstest"
)

// fakeEmitter records emitted events and their Kafka keys.
type fakeEmitter struct {
	mu     sync.Mutex
	events []*activitypb.BackendApiActivity
	keys   []string
}

func (f *fakeEmitter) Emit(key string, msg any) (*goka.Promise, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, msg.(*activitypb.BackendApiActivity))
	f.keys = append(f.keys, key)
	p, finish := goka.NewPromiseWithFinisher()
	finish(nil, nil)
	return p, nil
}

func (f *fakeEmitter) Finish() error { return nil }

// byRequest returns the event of a request id and its Kafka key.
func (f *fakeEmitter) byRequest(id string) (*activitypb.BackendApiActivity, string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, ev := range f.events {
		if ev.RequestId == id {
			return ev, f.keys[i], true
		}
	}
	return nil, "", false
}

type fakeUsage = viewstest.Rows

var usage = fakeUsage{
	"alice":    {Client: "alice", Total: 1},
	"bob":      {Client: "bob", Total: 2},
	"10.0.0.9": {Client: "10.0.0.9", Total: 3},
}

const keyLines = "alice:usage:read:%s\nbob:usage:read,users:read:%s\nwriter:users:write:%s\nops:admin:%s\n"

func testKeys(t *testing.T) *auth.Keys {
	t.Helper()
	text := fmt.Sprintf(keyLines, auth.Hash("alice-key"), auth.Hash("bob-key"), auth.Hash("writer-key"), auth.Hash("ops-key"))
	keys, err := auth.Parse(strings.NewReader(text), "test")
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// newServer builds the API as app does, with the users and dashboard routes
// as their packages declare them and /metrics and the debug pages as app
// declares them, every handler replaced by one that answers 200 and names
// the principal.
func newServer(t *testing.T, keys *auth.Keys) (*api.Server, *fakeEmitter) {
	t.Helper()
	em := &fakeEmitter{}
	pub := api.NewPublisher(em, 256)
	t.Cleanup(func() { _ = pub.Close(context.Background()) })
	cr, err := api.NewClientResolver(nil)
	if err != nil {
		t.Fatal(err)
	}
	ok := func(w http.ResponseWriter, r *http.Request) {
		p, _ := auth.FromContext(r.Context())
		w.Header().Set("X-Principal", p.Client)
		w.WriteHeader(http.StatusOK)
	}
	routes := append(userhttp.Routes(nil), dashboard.NewHub().Routes()...)
	routes = append(routes, usagehttp.Routes(usage)...)
	routes = append(routes,
		httpx.Route{Method: http.MethodGet, Path: "/metrics", Scope: auth.Public},
		httpx.Route{Path: "/debug/", Prefix: true, Scope: auth.Admin})
	for i := range routes {
		routes[i].Handler = http.HandlerFunc(ok)
	}
	srv, err := api.New(pub, cr, api.WithRoutes(routes...), api.WithAPIKeys(keys))
	if err != nil {
		t.Fatal(err)
	}
	return srv, em
}

type reqCase struct {
	name, method, path string
	hdr                map[string]string
	status             int
	// client is the activity event's Client; the network address if empty.
	client string
}

func key(k string) map[string]string    { return map[string]string{"X-API-Key": k} }
func bearer(k string) map[string]string { return map[string]string{"Authorization": "Bearer " + k} }

const addr = "192.0.2.7"

func run(t *testing.T, srv http.Handler, em *fakeEmitter, cases []reqCase) {
	t.Helper()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := fmt.Sprintf("req-%d", i)
			req := httptest.NewRequest(c.method, c.path, nil)
			req.RemoteAddr = addr + ":4000"
			req.Header.Set("X-Request-Id", id)
			for k, v := range c.hdr {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			if rec.Code != c.status {
				t.Fatalf("%s %s = %d, want %d: %s", c.method, c.path, rec.Code, c.status, rec.Body)
			}
			switch c.status {
			case http.StatusUnauthorized:
				if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), `Bearer realm="inarious"`) {
					t.Errorf("WWW-Authenticate %q", rec.Header().Get("WWW-Authenticate"))
				}
				fallthrough
			case http.StatusForbidden:
				var d problem.Details
				if rec.Header().Get("Content-Type") != problem.ContentType || json.Unmarshal(rec.Body.Bytes(), &d) != nil || d.Status != c.status {
					t.Errorf("not a problem document: %q %s", rec.Header().Get("Content-Type"), rec.Body)
				}
			}
			want := c.client
			if want == "" {
				want = addr
			}
			var ev *activitypb.BackendApiActivity
			var kafkaKey string
			testutil.Eventually(t, 5*time.Second, func() (found bool, _ string) {
				ev, kafkaKey, found = em.byRequest(id)
				return found, "no activity event for request " + id
			})
			if ev.Client != want || kafkaKey != want || ev.ClientHost != addr || ev.ClientPort != "4000" || ev.HttpStatus != int32(c.status) {
				t.Errorf("event client %q key %q host %q port %q status %d, want client and key %q from %s:4000",
					ev.Client, kafkaKey, ev.ClientHost, ev.ClientPort, ev.HttpStatus, want, addr)
			}
		})
	}
}

func TestOffByDefault(t *testing.T) {
	for name, keys := range map[string]*auth.Keys{"nil keys": nil, "no keys": {}} {
		t.Run(name, func(t *testing.T) {
			srv, em := newServer(t, keys)
			run(t, srv, em, []reqCase{
				{"usage list", "GET", "/usage", nil, 200, ""},
				{"any usage", "GET", "/usage/bob", nil, 200, ""},
				{"users write", "POST", "/users", nil, 200, ""},
				{"dashboard", "GET", "/dashboard", nil, 200, ""},
				{"debug pages", "GET", "/debug/pprof/", nil, 200, ""},
				{"a key is ignored", "GET", "/usage/bob", key("alice-key"), 200, ""},
			})
		})
	}
}

func TestKeysOn(t *testing.T) {
	srv, em := newServer(t, testKeys(t))
	run(t, srv, em, []reqCase{
		// Open routes, with or without a key; a valid key still names the client.
		{"healthz open", "GET", "/healthz", nil, 200, ""},
		{"readyz open", "GET", "/readyz", nil, 200, ""},
		{"metrics open", "GET", "/metrics", nil, 200, ""},
		{"healthz ignores a bad key", "GET", "/healthz", key("nope"), 200, ""},
		{"healthz with a key counts for it", "GET", "/healthz", key("alice-key"), 200, "alice"},
		{"unrouted is 404", "GET", "/no/such", nil, 404, ""},

		// Authentication.
		{"missing key", "GET", "/usage/alice", nil, 401, ""},
		{"wrong key", "GET", "/usage/alice", key("alice-kei"), 401, ""},
		{"hash as key", "GET", "/usage/alice", key(auth.Hash("alice-key")), 401, ""},
		{"other auth scheme", "GET", "/usage/alice", map[string]string{"Authorization": "Basic YWxpY2U6eA=="}, 401, ""},
		{"conflicting headers", "GET", "/usage/alice", map[string]string{"X-API-Key": "alice-key", "Authorization": "Bearer bob-key"}, 401, ""},
		{"missing key on users", "GET", "/users", nil, 401, ""},
		{"missing key on dashboard", "GET", "/dashboard", nil, 401, ""},

		// Own usage only.
		{"own usage", "GET", "/usage/alice", key("alice-key"), 200, "alice"},
		{"own usage via bearer", "GET", "/usage/alice", bearer("alice-key"), 200, "alice"},
		{"own usage, lowercase bearer", "HEAD", "/usage/alice", map[string]string{"Authorization": "bearer alice-key"}, 200, "alice"},
		{"other client's usage", "GET", "/usage/bob", key("alice-key"), 403, "alice"},
		{"an address's usage", "GET", "/usage/10.0.0.9", key("alice-key"), 403, "alice"},
		{"usage list needs admin", "GET", "/usage", key("alice-key"), 403, "alice"},
		{"usage needs usage:read", "GET", "/usage/writer", key("writer-key"), 403, "writer"},

		// Users.
		{"users:read reads", "GET", "/users/u1", key("bob-key"), 200, "bob"},
		{"users:read cannot write", "PUT", "/users/u1", key("bob-key"), 403, "bob"},
		{"usage:read cannot read users", "GET", "/users", key("alice-key"), 403, "alice"},
		{"users:write reads", "GET", "/users", key("writer-key"), 200, "writer"},
		{"users:write creates", "POST", "/users", key("writer-key"), 200, "writer"},
		{"users:write deletes", "DELETE", "/users/u1", bearer("writer-key"), 200, "writer"},
		{"users:write cannot list usage", "GET", "/usage", key("writer-key"), 403, "writer"},

		// Admin.
		{"admin reads any usage", "GET", "/usage/bob", key("ops-key"), 200, "ops"},
		{"admin reads an address's usage", "GET", "/usage/10.0.0.9", key("ops-key"), 200, "ops"},
		{"admin lists usage", "GET", "/usage", key("ops-key"), 200, "ops"},
		{"admin writes users", "PATCH", "/users/u1", key("ops-key"), 200, "ops"},
		{"admin sees dashboard", "GET", "/dashboard/assets/app.js", key("ops-key"), 200, "ops"},
		{"dashboard needs admin", "GET", "/dashboard", key("writer-key"), 403, "writer"},
		{"dashboard events need admin", "GET", "/dashboard/events", key("bob-key"), 403, "bob"},
		{"debug pages need a key", "POST", "/debug/pprof/symbol", nil, 401, ""},
		{"debug pages need admin", "GET", "/debug/goka/", key("writer-key"), 403, "writer"},
		{"admin on debug pages", "GET", "/debug/pprof/heap", key("ops-key"), 200, "ops"},
	})
}

func TestPrincipalInContext(t *testing.T) {
	srv, _ := newServer(t, testKeys(t))
	req := httptest.NewRequest("GET", "/users/u1", nil)
	req.Header.Set("X-API-Key", "writer-key")
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Code != 200 || rec.Header().Get("X-Principal") != "writer" {
		t.Errorf("status %d principal %q", rec.Code, rec.Header().Get("X-Principal"))
	}
	if _, ok := auth.FromContext(context.Background()); ok {
		t.Error("principal in an empty context")
	}
}

// TestNewPolicyRejects: a rule the middleware could only guess about stops
// the policy from being built.
func TestNewPolicyRejects(t *testing.T) {
	get := []string{http.MethodGet}
	for name, c := range map[string]struct {
		rules []auth.Rule
		want  string
	}{
		"no scope":       {[]auth.Rule{{Methods: get, Template: "/x"}}, "GET /x declares no scope"},
		"unknown scope":  {[]auth.Rule{{Methods: get, Template: "/x", Scope: "usage:write"}}, `unknown scope "usage:write"`},
		"open but own":   {[]auth.Rule{{Methods: get, Template: "/usage/{client}", Scope: auth.Public, Own: true}}, "own client"},
		"declared twice": {[]auth.Rule{{Template: "/debug/", Scope: auth.Admin}, {Template: "/debug/", Scope: auth.Public}}, "* /debug/ is declared twice"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := auth.NewPolicy(c.rules); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("NewPolicy = %v, want an error with %q", err, c.want)
			}
		})
	}
}

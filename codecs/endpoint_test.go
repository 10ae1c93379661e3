package codecs_test

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/httpx"
)

func TestPathTemplate(t *testing.T) {
	cases := map[string]string{
		"http://localhost:8000/users/":                              "/users",
		"http://localhost:8000/users":                               "/users",
		"https://api.example.com:443/users/42?expand=1#top":         "/users/{id}",
		"/users/6f1c2d3e-1111-4222-8333-444455556666":               "/users/{id}",
		"/api/v1/orders/20261129/items":                             "/api/v1/orders/{id}/items",
		"/files/0123456789abcdef0123456789abcdef0123456789abcdef00": "/files/{id}",
		"http://localhost:8000/":                                    "/",
		"":                                                          "/",
		"/users?id=1":                                               "/users",
		"/a%zz/b":                                                   "/a%zz/b",
	}
	for in, want := range cases {
		if got := codecs.PathTemplate(in); got != want {
			t.Errorf("PathTemplate(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEndpointKeyPrefersTheRouteTemplate(t *testing.T) {
	ev := &activitypb.BackendApiActivity{HttpMethod: "GET", Endpoint: "/users/42", Route: "/users/{id}"}
	if got := codecs.EndpointKey(ev); got != "GET /users/{id}" {
		t.Errorf("got %q", got)
	}
	ev.Route = httpx.UnmatchedRoute
	if got := codecs.EndpointKey(ev); got != "GET (unmatched)" {
		t.Errorf("got %q", got)
	}
}

// A producer writing Users itself may send any method: one that is no
// token is named _OTHER, so that "FOO:" never reads as a service.
func TestEndpointKeyOfAMethodThatIsNoToken(t *testing.T) {
	for _, method := range []string{"FOO:", "GET /x", "B\tAD", strings.Repeat("M", codecs.MaxMethodLen+1)} {
		ev := &activitypb.BackendApiActivity{HttpMethod: method, Route: "/a"}
		key := codecs.EndpointKey(ev)
		if svc, ep := codecs.SplitEndpointKey(key); key != "_OTHER /a" || svc != codecs.DefaultService || ep != "_OTHER /a" {
			t.Errorf("method %q: key %q, split into %q and %q", method, key, svc, ep)
		}
	}
}

// Events of the original FastAPI service carry fields 1-4 only: the client
// is the caller's host and the endpoint is named by the URL's path.
func ExampleEndpointKey() {
	ev := &activitypb.BackendApiActivity{
		ClientHost: "10.0.0.1", ClientPort: "51234",
		Endpoint: "http://localhost:8000/users/42", HttpMethod: "DELETE",
	}
	fmt.Println(codecs.ClientOf(ev), codecs.EndpointKey(ev))
	// Output: 10.0.0.1 DELETE /users/{id}
}

// Keys of named services carry the service; SplitEndpointKey and InService
// part them again, however the route looks.
func TestServiceKeys(t *testing.T) {
	cases := []struct {
		service, method, route, key, wantService string
	}{
		{"", "GET", "/users/{id}", "GET /users/{id}", codecs.DefaultService},
		{"default", "GET", "/a", "GET /a", codecs.DefaultService},
		{"orders", "GET", "/orders/{id}", "orders: GET /orders/{id}", "orders"},
		{"svc:v2", "POST", "/a: b c", "svc:v2: POST /a: b c", "svc:v2"},
		{"my shop\n", "GET", "/x", "my_shop_: GET /x", "my_shop_"},
		{"", "GET", "/x: y", "GET /x: y", codecs.DefaultService},
	}
	for _, c := range cases {
		ev := &activitypb.BackendApiActivity{Service: c.service, HttpMethod: c.method, Route: c.route}
		key := codecs.EndpointKey(ev)
		if key != c.key {
			t.Errorf("EndpointKey(%q, %q %q) = %q, want %q", c.service, c.method, c.route, key, c.key)
		}
		svc, ep := codecs.SplitEndpointKey(key)
		if svc != c.wantService || ep != c.method+" "+c.route {
			t.Errorf("SplitEndpointKey(%q) = %q, %q", key, svc, ep)
		}
		if !codecs.InService(key, codecs.NormalService(c.wantService)) {
			t.Errorf("%q not in service %q", key, c.wantService)
		}
		for _, other := range []string{"", "orders", "svc", "my_shop"} {
			if other != codecs.NormalService(c.wantService) && codecs.InService(key, other) {
				t.Errorf("%q in service %q too", key, other)
			}
		}
		if got := codecs.ServiceEndpointKey(c.service, c.method+" "+c.route); got != key {
			t.Errorf("ServiceEndpointKey(%q, ...) = %q, want %q", c.service, got, key)
		}
	}
	long := strings.Repeat("é", 100)
	if got := codecs.NormalService(long + " "); len(got) > codecs.MaxServiceLen || !utf8.ValidString(got) {
		t.Errorf("NormalService of a long name: %d bytes, valid %v", len(got), utf8.ValidString(got))
	}
}

func TestValidMethod(t *testing.T) {
	for m, want := range map[string]bool{"GET": true, "PROPFIND": true, "M-SEARCH": true, "": false, "GE T": false,
		"GET:": false, "ÜBER": false, strings.Repeat("A", 33): false} {
		if codecs.ValidMethod(m) != want {
			t.Errorf("ValidMethod(%q) = %v", m, !want)
		}
	}
}

package codecs_test

import (
	"fmt"
	"testing"

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

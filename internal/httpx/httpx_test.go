package httpx_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/gorilla/mux"

	"github.com/inarious/inarious/internal/httpx"
)

func TestAllowed(t *testing.T) {
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	router := mux.NewRouter()
	httpx.Mount(router, []httpx.Route{
		{Method: http.MethodGet, Path: "/users", Handler: ok},
		{Method: http.MethodPost, Path: "/users", Handler: ok},
		{Method: http.MethodDelete, Path: "/users/{id}", Handler: ok},
		{Method: http.MethodGet, Path: "/endpoints/{endpoint}", Escaped: true, Handler: ok},
	})
	for target, want := range map[string][]string{
		"/users":                    {"GET", "HEAD", "POST"},
		"/users/1":                  {"DELETE"},
		"/endpoints/GET%20%2Fusers": {"GET", "HEAD"},
		"/nowhere":                  nil,
	} {
		if got := httpx.Allowed(router, httptest.NewRequest("TRACE", target, nil)); !slices.Equal(got, want) {
			t.Errorf("Allowed(%s) = %v, want %v", target, got, want)
		}
	}
}

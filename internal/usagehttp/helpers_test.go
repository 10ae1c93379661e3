package usagehttp_test

import (
	"net/http"
	"testing"

	"github.com/gorilla/mux"

	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/usagehttp"
	"github.com/inarious/inarious/views"
	"github.com/inarious/inarious/views/viewstest"
)

// serve mounts the usage routes over usage, as the API does (without auth
// and the activity middleware, which the api package tests).
func serve(t *testing.T, usage views.UsageReader) http.Handler {
	t.Helper()
	r := mux.NewRouter()
	httpx.Mount(r, usagehttp.Routes(usage))
	return r
}

// fakeUsage is a table of fixed rows without windows.
type fakeUsage = viewstest.Rows

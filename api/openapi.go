package api

import (
	_ "embed"
	"encoding/json"
	"net/http"
	"strconv"
)

// openAPIDocument is the hand-written OpenAPI 3 description of every route
// the binary serves. api/openapi_test.go checks it against the router, so a
// route added without documenting it fails the tests.
//
//go:embed openapi.json
var openAPIDocument []byte

func init() {
	// A malformed document is a build defect: fail at start, not per request.
	if !json.Valid(openAPIDocument) {
		panic("api: openapi.json is not valid JSON")
	}
}

// serveOpenAPI is GET /openapi.json.
func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(openAPIDocument)))
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(openAPIDocument)
	}
}

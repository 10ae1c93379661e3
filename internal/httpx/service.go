package httpx

import (
	"net/http"
	"unicode/utf8"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/problem"
)

// ServiceParam reads ?service=, which narrows a read to one service's
// endpoints: the name as keys carry it (codecs.NormalService, "" for the
// default service), and whether one was given. When the name is not valid
// it answers 400 itself and ok is false.
func ServiceParam(w http.ResponseWriter, r *http.Request) (service string, narrowed, ok bool) {
	q := r.URL.Query()
	if !q.Has("service") {
		return "", false, true
	}
	name := q.Get("service")
	if name == "" || len(name) > codecs.MaxServiceLen || !utf8.ValidString(name) {
		problem.Write(w, r, http.StatusBadRequest, "service must be a name of 1 to 128 bytes of valid UTF-8")
		return "", false, false
	}
	return codecs.NormalService(name), true, true
}

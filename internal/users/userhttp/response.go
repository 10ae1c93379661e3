package userhttp

import (
	"errors"
	"net/http"
	"strconv"
	"sync"

	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/problem"
	"github.com/inarious/inarious/internal/users"
)

// writeUser sends u with its revision as a strong ETag. The body is
// writeJSON's, byte for byte (users.AppendJSON and Encode's newline).
func writeUser(w http.ResponseWriter, status int, u users.User) {
	w.Header().Set("ETag", strconv.Quote(u.Rev))
	bp := userBuffers.Get().(*[]byte)
	defer userBuffers.Put(bp)
	b, err := users.AppendJSON((*bp)[:0], &u)
	if err != nil {
		httpx.WriteJSON(w, status, u) // as before: the status, then no body
		return
	}
	*bp = b
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// userBuffers holds writeUser's encoding buffers: one user is a few hundred bytes.
var userBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func writeValidation(w http.ResponseWriter, r *http.Request, fields map[string]string) {
	problem.WriteDetails(w, r, problem.Details{
		Status: http.StatusBadRequest,
		Detail: "one or more fields are invalid",
		Errors: fields,
	})
}

// storeError maps domain errors to statuses. Anything else is a 500 whose
// cause is logged but never sent, as it may expose internals.
func (h *handler) storeError(w http.ResponseWriter, r *http.Request, err error) {
	var ve *users.ValidationError
	switch {
	case errors.As(err, &ve):
		writeValidation(w, r, ve.Fields)
	case errors.Is(err, users.ErrNotFound):
		problem.Write(w, r, http.StatusNotFound, "user not found")
	case errors.Is(err, users.ErrDuplicateEmail):
		problem.Write(w, r, http.StatusConflict, "email is already in use")
	case errors.Is(err, users.ErrStaleRevision):
		problem.Write(w, r, http.StatusPreconditionFailed, "the user was modified; fetch it again and retry with the new ETag")
	default:
		h.log.ErrorContext(r.Context(), "users store failed",
			"method", r.Method, "path", r.URL.Path, "err", err)
		problem.Write(w, r, http.StatusInternalServerError, "internal server error")
	}
}

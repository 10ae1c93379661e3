package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/inarious/inarious/internal/problem"
)

// usageError is an error of a UsageReader that says how to answer it, e.g.
// a routed read that found no owner (503 with Retry-After) or a list a
// reader cannot serve (501).
type usageError interface {
	error
	Status() int
	RetryAfter() time.Duration
	// PublicDetail is shown to the client; Error() is for the log.
	PublicDetail() string
}

// writeUsageError answers a failed usage read: as the error says if it
// can, else 503 with fallback as the detail.
func writeUsageError(w http.ResponseWriter, r *http.Request, err error, fallback string) {
	var ue usageError
	if !errors.As(err, &ue) {
		problem.Write(w, r, http.StatusServiceUnavailable, fallback)
		return
	}
	if d := ue.RetryAfter(); d > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int((d+time.Second-1)/time.Second))))
	}
	problem.Write(w, r, ue.Status(), ue.PublicDetail())
}

package problem

import (
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Answer is an error that says how to answer it, e.g. a routed read that
// found no owner (503 with Retry-After).
type Answer interface {
	error
	Status() int
	RetryAfter() time.Duration
	// PublicDetail is shown to the client; Error() is for the log.
	PublicDetail() string
}

// WriteError answers err as it says if it is an Answer, else with 503 and
// fallback as the detail.
func WriteError(w http.ResponseWriter, r *http.Request, err error, fallback string) {
	var a Answer
	if !errors.As(err, &a) {
		Write(w, r, http.StatusServiceUnavailable, fallback)
		return
	}
	if d := a.RetryAfter(); d > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int((d+time.Second-1)/time.Second))))
	}
	Write(w, r, a.Status(), a.PublicDetail())
}

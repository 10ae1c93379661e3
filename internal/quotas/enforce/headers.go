package enforce

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/problem"
)

// The headers of draft-ietf-httpapi-ratelimit-headers, RateLimit-Policy
// (per limit: quota q calls per window of w seconds) and RateLimit (r calls
// remain, the window resets in t seconds), structured-field lists, keyed
// as http.Header keeps them (textproto's canonical form), so setting them
// costs no canonicalization.
const (
	policyKey    = "Ratelimit-Policy"
	rateLimitKey = "Ratelimit"
)

// WriteHeaders sets the RateLimit headers of d, if a policy applied.
func WriteHeaders(h http.Header, d Decision) {
	if d.headers[0] == nil {
		return
	}
	h[policyKey], h[rateLimitKey] = d.headers[0], d.headers[1]
}

// quoted is s as a structured-field string (RFC 9651): quotes and
// backslashes escaped; policy names are printable ASCII (quotas.Validate).
func quoted(s string) string {
	if !strings.ContainsAny(s, `"\`) {
		return `"` + s + `"`
	}
	return strconv.Quote(s) // the same escapes for printable ASCII
}

// seconds is d in whole seconds, rounded up, and never negative.
func seconds(d time.Duration) int64 {
	return max(0, int64((d+time.Second-1)/time.Second))
}

// Refuse answers a refused call: 429, Retry-After, and a problem naming the
// limits reached; or, when the quota could not be read (d.Unavailable),
// 503. The RateLimit headers are WriteHeaders'.
func Refuse(w http.ResponseWriter, r *http.Request, d Decision) {
	w.Header().Set("Retry-After", strconv.FormatInt(max(1, seconds(d.RetryAfter)), 10))
	if d.Unavailable {
		problem.Write(w, r, http.StatusServiceUnavailable, "the quota of this call cannot be checked now; retry shortly")
		return
	}
	var reached []string
	for _, ls := range d.Limits {
		if ls.Remaining == 0 {
			what := "calls"
			if ls.Endpoint != "" {
				what = "calls of " + ls.Endpoint
			}
			reached = append(reached, fmt.Sprintf("%d %s per %s", ls.Limit.Limit, what, ls.Window))
		}
	}
	problem.Write(w, r, http.StatusTooManyRequests, fmt.Sprintf("over the quota of %s (policy %q); retry in %d s",
		strings.Join(reached, " and "), d.Policy, max(1, seconds(d.RetryAfter))))
}

// Gate is the middleware the API puts on every route but the exempt ones
// (Config.Exempt): it decides each call of clientOf(r), the client the call
// is counted under, and answers 429 when it is over a quota; allowed calls
// carry the remaining quota in the RateLimit headers.
func (l *Limiter) Gate(rt httpx.Route, clientOf func(*http.Request) string, next http.Handler) http.Handler {
	if slices.Contains(l.cfg.Exempt, rt.Path) {
		return next
	}
	declared := rt.Method + " " + rt.Path
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		endpoint := declared
		if r.Method != rt.Method { // HEAD on a GET route, or a route of every method
			endpoint = r.Method + " " + rt.Path
		}
		d := l.decide(clientOf(r), call{endpoint: endpoint}, true, false)
		WriteHeaders(w.Header(), d)
		if !d.Allowed {
			Refuse(w, r, d)
			return
		}
		next.ServeHTTP(w, r)
	})
}

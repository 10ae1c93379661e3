// Package quotas is the quota policy table: for a client (or Default, for
// every client without a policy of its own), limits on its calls per usage
// window, optionally per endpoint, kept in a compacted topic that every API
// replica reads with a goka view (Kafka Streams' GlobalKTable), so every
// replica enforces the same policies without a restart. Enforcement is
// internal/quotas/enforce, the routes internal/quotas/quotahttp; the README,
// "Quotas", says the rest.
package quotas

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/windows"
)

// Topic is the compacted topic of the policies, keyed by client.
const Topic goka.Table = "quotas"

// TopicSpec declares Topic: compacted, one partition (a few policies; every
// replica reads all of it).
func TopicSpec() kafka.TopicSpec {
	return kafka.TopicSpec{Name: string(Topic), Partitions: 1, Compact: true}
}

// Default names the policy of every client that has none of its own.
const Default = "*"

// Codec encodes the topic's values, *Policy as JSON.
type Codec = codecs.JSON[Policy]

// Limit caps a client's calls in each tumbling window of Window (a step of
// the usage windows, e.g. "1m": calls per UTC minute).
type Limit struct {
	Window string `json:"window"`
	Limit  uint64 `json:"limit"`
	// Endpoint, if set, limits only the calls of that endpoint
	// ("GET /users/{id}", the usage table's endpoint key); else all calls.
	Endpoint string `json:"endpoint,omitempty"`
	// Service, if set, limits only the calls of that service (its
	// endpoints in the usage table, codecs.ServiceEndpointKey). The API's
	// own calls are the default service's: a limit of another service
	// counts its calls but refuses none of the API's.
	Service string `json:"service,omitempty"`
}

// Name is how the RateLimit headers name l: its window, and its endpoint
// and service when it has them.
func (l Limit) Name() string {
	name := l.Window
	if l.Service != "" {
		name += " " + l.Service
	}
	if l.Endpoint != "" {
		name += " " + l.Endpoint
	}
	return name
}

// Step is l's window as a duration; Validate has checked it parses.
func (l Limit) Step() time.Duration {
	d, _ := windows.ParseDuration(l.Window)
	return d
}

// Policy is one client's limits. A call is refused once any limit that
// applies to it is reached.
type Policy struct {
	Client string  `json:"client"`
	Limits []Limit `json:"limits"`
	// Updated is when the policy was written; it also tells a write's
	// reader that the view holds that write.
	Updated time.Time `json:"updated"`
}

// Bounds of a policy.
const (
	MaxLimits      = 32
	MaxLimit       = 1_000_000_000_000_000
	maxClientLen   = 256
	MaxEndpointLen = 512
	maxServiceLen  = 128
)

// CheckClient reports why client cannot name a policy: the usage table's
// client names are UTF-8 of 1 to 256 bytes; Default is the default policy.
func CheckClient(client string) error {
	if client == "" || len(client) > maxClientLen || !utf8.ValidString(client) {
		return fmt.Errorf("client must be valid UTF-8 of 1 to %d bytes (or %q for the default policy)", maxClientLen, Default)
	}
	return nil
}

// Validate checks p against the windows kept (a limit's window must be one
// of their steps); the answer maps each bad field, as "limits[1].window",
// to what is wrong with it, and is empty when p is good.
func (p Policy) Validate(w windows.Config) map[string]string {
	bad := map[string]string{}
	if err := CheckClient(p.Client); err != nil {
		bad["client"] = err.Error()
	}
	if len(p.Limits) == 0 || len(p.Limits) > MaxLimits {
		bad["limits"] = fmt.Sprintf("limits must hold 1 to %d limits (DELETE removes a policy)", MaxLimits)
	}
	seen := map[string]int{}
	for i, l := range p.Limits {
		field := "limits[" + strconv.Itoa(i) + "]."
		if msg := CheckWindow(l.Window, w); msg != "" {
			bad[field+"window"] = msg
		}
		if l.Limit > MaxLimit {
			bad[field+"limit"] = fmt.Sprintf("limit must be a whole number from 0 to %d", uint64(MaxLimit))
		}
		if l.Endpoint != "" && !ValidEndpoint(l.Endpoint) {
			bad[field+"endpoint"] = `endpoint must be a method, a space and a route, e.g. "GET /users/{id}"`
		}
		if l.Service != "" && !ValidService(l.Service) {
			bad[field+"service"] = ServiceRule
		}
		if j, dup := seen[l.Name()]; dup {
			bad[field+"window"] = fmt.Sprintf("limits[%d] has the same window, endpoint and service", j)
		}
		seen[l.Name()] = i
	}
	return bad
}

// CheckWindow says what is wrong with window as a limit's window, given
// the windows kept; "" when it is one of their steps.
func CheckWindow(window string, w windows.Config) string {
	kept := make([]string, len(w.Specs))
	for i, s := range w.Specs {
		kept[i] = windows.FormatDuration(s.Step)
	}
	if len(kept) == 0 {
		return "windowed usage is off (--windows), so no limit can be enforced"
	}
	if window == "" {
		return "window is required: one of " + strings.Join(kept, ", ")
	}
	d, err := windows.ParseDuration(window)
	if _, ok := w.Spec(d); err != nil || !ok {
		return fmt.Sprintf("window %q is not a usage window; the windows kept are %s", window, strings.Join(kept, ", "))
	}
	return ""
}

// EndpointPattern is the syntax of a limit's endpoint, as the API document
// declares it: an upper-case method, one space, a route of printable ASCII
// starting with / ("GET /users/{id}").
const EndpointPattern = `^[A-Z]+ /[!-~]*$`

var endpointSyntax = regexp.MustCompile(EndpointPattern)

// ValidEndpoint reports whether e is an endpoint a limit may name.
func ValidEndpoint(e string) bool { return len(e) <= MaxEndpointLen && endpointSyntax.MatchString(e) }

// ServiceRule says what a service a limit names may be.
var ServiceRule = fmt.Sprintf("service must be 1 to %d letters, digits or . _ -", maxServiceLen)

// ValidService reports whether s is a service a limit may name (and a
// check ask about).
func ValidService(s string) bool {
	if s == "" || len(s) > maxServiceLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '.' || b == '_' || b == '-') {
			return false
		}
	}
	return true
}

package codecs

import (
	"net/url"
	"strings"

	"github.com/inarious/inarious/codecs/activitypb"
)

// IDSegment replaces path segments that look like identifiers when an
// endpoint is derived from a URL.
const IDSegment = "{id}"

// EndpointKey names an endpoint as "METHOD /route/{template}". Inarious' own
// events carry the route template; events from producers that know no
// routes (the original FastAPI service sends the full URL) are named by the
// URL's path, without scheme, host, query or trailing slash, with segments
// that look like identifiers replaced by {id}.
func EndpointKey(ev *activitypb.BackendApiActivity) string {
	route := ev.GetRoute()
	if route == "" {
		route = PathTemplate(ev.GetEndpoint())
	}
	return ev.GetHttpMethod() + " " + route
}

// PathTemplate derives a route-like template from a URL or path:
// "http://localhost:8000/users/42/?x=1" gives "/users/{id}".
func PathTemplate(endpoint string) string {
	path := endpoint
	if u, err := url.Parse(endpoint); err == nil {
		path = u.Path
	} else if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	segments := strings.Split(strings.Trim(path, "/"), "/")
	var b strings.Builder
	for _, s := range segments {
		if s == "" {
			continue
		}
		b.WriteByte('/')
		if looksLikeID(s) {
			b.WriteString(IDSegment)
		} else {
			b.WriteString(s)
		}
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

// looksLikeID is true for numbers, UUIDs, hashes, dates and other tokens
// whose values are unbounded; "v1" or "users" are kept.
func looksLikeID(s string) bool {
	digits := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			digits++
		}
	}
	switch {
	case digits == len(s):
		return true
	case len(s) > 32:
		return true
	case len(s) >= 8 && digits > 0:
		return true
	}
	return false
}

package codecs

import (
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/inarious/inarious/codecs/activitypb"
)

// IDSegment replaces path segments that look like identifiers when an
// endpoint is derived from a URL.
const IDSegment = "{id}"

// EndpointKey names an endpoint as "METHOD /route/{template}", prefixed by
// its service unless that is the default one: "orders: GET /orders/{id}"
// (ServiceEndpointKey). Inarious' own events carry the route template;
// events from producers that know no routes (the original FastAPI service
// sends the full URL) are named by the URL's path, without scheme, host,
// query or trailing slash, with segments that look like identifiers
// replaced by {id}. A method that is no token (ValidMethod) is named
// OtherMethod, so that no producer's method reads as a service.
func EndpointKey(ev *activitypb.BackendApiActivity) string {
	route := ev.GetRoute()
	if route == "" {
		route = PathTemplate(ev.GetEndpoint())
	}
	method := ev.GetHttpMethod()
	if method != "" && !ValidMethod(method) {
		method = OtherMethod
	}
	if svc := ServiceOf(ev); svc != "" {
		return svc + serviceSeparator + method + " " + route
	}
	return method + " " + route
}

// OtherMethod stands for a method that cannot be part of a key, as
// OpenTelemetry's http.request.method does for methods it does not know.
const OtherMethod = "_OTHER"

// MaxMethodLen bounds an HTTP method in keys.
const MaxMethodLen = 32

// ValidMethod reports whether m can name a method in an endpoint key: an
// RFC 9110 token (no space, no colon, ...) of at most MaxMethodLen bytes,
// so that keys split again (SplitEndpointKey).
func ValidMethod(m string) bool {
	if m == "" || len(m) > MaxMethodLen {
		return false
	}
	for i := 0; i < len(m); i++ {
		if !tokenChar[m[i]] {
			return false
		}
	}
	return true
}

// tokenChar marks the bytes of an RFC 9110 token; every event's key
// checks its method with it.
var tokenChar = func() (t [256]bool) {
	for c := '!'; c < 0x7f; c++ {
		t[c] = !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c)
	}
	return t
}()

// DefaultService names the service of events that carry none: those of the
// original schema, and Inarious' own API's unless it is given a name. Its
// endpoint keys carry no prefix.
const DefaultService = "default"

// MaxServiceLen bounds a service name in keys; longer names are cut.
const MaxServiceLen = 128

// serviceSeparator ends a service in an endpoint key. A key is told apart
// from a default-service key by its first space following a colon: a
// method is a token, which has neither.
const serviceSeparator = ": "

// ServiceOf is the service an event is counted under, as keys carry it:
// "" for the default service. Spaces and control characters become '_' so
// that the key can be split again (SplitEndpointKey).
func ServiceOf(ev *activitypb.BackendApiActivity) string {
	return NormalService(ev.GetService())
}

// NormalService is a service name as keys carry it ("" for the default
// service), e.g. to look up ?service=.
func NormalService(s string) string {
	if s == "" || s == DefaultService {
		return ""
	}
	clean := len(s) <= MaxServiceLen
	for i := 0; clean && i < len(s); i++ {
		clean = s[i] > ' ' && s[i] != 0x7f
	}
	if clean {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	b := make([]byte, 0, min(len(s), MaxServiceLen))
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			r = '_'
		}
		if len(b)+utf8.RuneLen(r) > MaxServiceLen {
			break
		}
		b = utf8.AppendRune(b, r)
	}
	return string(b)
}

// ServiceEndpointKey is the key of endpoint ("METHOD /route") of service.
func ServiceEndpointKey(service, endpoint string) string {
	if service = NormalService(service); service == "" {
		return endpoint
	}
	return service + serviceSeparator + endpoint
}

// SplitEndpointKey parts an endpoint key into its service (DefaultService
// when the key names none) and its "METHOD /route".
func SplitEndpointKey(key string) (service, endpoint string) {
	if i := strings.IndexByte(key, ' '); i > 0 && key[i-1] == ':' {
		return key[:i-1], key[i+1:]
	}
	return DefaultService, key
}

// InService reports whether an endpoint key belongs to service (a name as
// NormalService makes it).
func InService(key, service string) bool {
	if service == "" {
		i := strings.IndexByte(key, ' ')
		return i <= 0 || key[i-1] != ':'
	}
	return len(key) > len(service)+len(serviceSeparator) && key[:len(service)] == service &&
		key[len(service):len(service)+len(serviceSeparator)] == serviceSeparator
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

package otlpin

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
)

// The span attributes read, stable names first, then the older ones
// instrumentations still emit (HTTP semantic conventions, stable since v1.23).
var (
	methodAttrs  = []string{"http.request.method", "http.method"}
	pathAttrs    = []string{"url.path", "http.target"}
	urlAttrs     = []string{"url.full", "http.url"}
	statusAttrs  = []string{"http.response.status_code", "http.status_code"}
	addressAttrs = []string{"client.address", "http.client_ip", "net.peer.ip", "net.sock.peer.addr"}
	portAttrs    = []string{"client.port", "net.peer.port", "net.sock.peer.port"}
)

const (
	routeAttr   = "http.route"
	serviceAttr = "service.name"
	// methodOriginalAttr holds the method sent when instrumentations
	// record codecs.OtherMethod for a method outside the known set.
	methodOriginalAttr = "http.request.method_original"
)

// Result is what Convert made of a request.
type Result struct {
	Events []*activitypb.BackendApiActivity
	// Rejected counts the server spans that could not be events; Reason
	// says why, for the response's partial_success.error_message.
	Rejected int64
	Reason   string
}

// Convert turns every SERVER span of td into an activity event; other kinds
// are not API calls and are skipped without being rejected. clientAttr
// names the span attribute the call is counted under (empty: the client's
// address only).
func Convert(td ptrace.Traces, clientAttr string) Result {
	var res Result
	reasons := map[string]int64{}
	var order []string
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		service := ""
		if v, ok := rs.Resource().Attributes().Get(serviceAttr); ok {
			service = v.AsString()
		}
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				sp := spans.At(k)
				if sp.Kind() != ptrace.SpanKindServer {
					continue
				}
				ev, why := convertSpan(sp, service, clientAttr)
				if why != "" {
					res.Rejected++
					if reasons[why] == 0 {
						order = append(order, why)
					}
					reasons[why]++
					continue
				}
				res.Events = append(res.Events, ev)
			}
		}
	}
	if res.Rejected > 0 {
		parts := make([]string, len(order))
		for i, why := range order {
			parts[i] = fmt.Sprintf("%d server spans %s", reasons[why], why)
		}
		res.Reason = strings.Join(parts, "; ")
	}
	return res
}

// convertSpan is sp's event, or why it cannot be one.
func convertSpan(sp ptrace.Span, service, clientAttr string) (*activitypb.BackendApiActivity, string) {
	attrs := sp.Attributes()
	method := firstString(attrs, methodAttrs)
	if method == codecs.OtherMethod {
		if orig := firstString(attrs, []string{methodOriginalAttr}); orig != "" {
			method = orig
		}
	}
	if method == "" {
		return nil, "without http.request.method (or http.method)"
	}
	if !codecs.ValidMethod(method) {
		return nil, "whose http.request.method is not an HTTP method (a token of at most 32 bytes)"
	}
	path := firstString(attrs, pathAttrs)
	route := firstString(attrs, []string{routeAttr})
	if route == "" && path != "" {
		route = codecs.PathTemplate(path)
	}
	if route == "" {
		return nil, "without http.route, url.path (or http.target)"
	}
	host := firstString(attrs, addressAttrs)
	client := ""
	if clientAttr != "" {
		client = firstString(attrs, []string{clientAttr})
	}
	if host == "" && client == "" {
		name := "client.address"
		if clientAttr != "" {
			name = clientAttr + " or client.address"
		}
		return nil, "without " + name
	}
	endpoint := firstString(attrs, urlAttrs)
	if endpoint == "" {
		endpoint = path
	}
	if endpoint == "" {
		endpoint = route
	}
	ev := &activitypb.BackendApiActivity{
		ClientHost: host,
		ClientPort: firstString(attrs, portAttrs),
		Endpoint:   endpoint,
		HttpMethod: method,
		HttpStatus: int32(firstInt(attrs, statusAttrs)),
		Route:      route,
		RequestId:  requestID(sp.TraceID(), sp.SpanID()),
		Client:     client,
		Service:    service,
	}
	if start, end := sp.StartTimestamp(), sp.EndTimestamp(); start != 0 {
		ev.RequestTime = timestamppb.New(start.AsTime())
		if end > start {
			ev.DurationUs = int64(end-start) / 1000
		}
	}
	return ev, ""
}

// requestID names a span as trace id and span id in hex, W3C style.
func requestID(trace pcommon.TraceID, span pcommon.SpanID) string {
	var b [32 + 1 + 16]byte
	hex.Encode(b[:32], trace[:])
	b[32] = '-'
	hex.Encode(b[33:], span[:])
	return string(b[:])
}

// firstString is the first of names attrs holds, as a string.
func firstString(attrs pcommon.Map, names []string) string {
	for _, n := range names {
		if v, ok := attrs.Get(n); ok {
			if s := v.AsString(); s != "" {
				return s
			}
		}
	}
	return ""
}

// firstInt is the first of names attrs holds as an integer, or as a string
// of one (some instrumentations record the status code as a string).
func firstInt(attrs pcommon.Map, names []string) int64 {
	for _, n := range names {
		v, ok := attrs.Get(n)
		if !ok {
			continue
		}
		switch v.Type() {
		case pcommon.ValueTypeInt:
			return v.Int()
		case pcommon.ValueTypeDouble:
			return int64(v.Double())
		case pcommon.ValueTypeStr:
			if i, err := strconv.ParseInt(strings.TrimSpace(v.Str()), 10, 32); err == nil {
				return i
			}
		default:
		}
	}
	return 0
}

package otlpin_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/auth"
	"github.com/inarious/inarious/internal/otlpin"
)

// fakePub takes batches up to room events, as the API's publisher does.
type fakePub struct {
	mu      sync.Mutex
	room    int
	healthy bool
	events  []*activitypb.BackendApiActivity
}

func (p *fakePub) PublishAll(evs []*activitypb.BackendApiActivity) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(evs) > p.room-len(p.events) {
		return false
	}
	p.events = append(p.events, evs...)
	return true
}

func (p *fakePub) Healthy() bool { return p.healthy }

var (
	t0      = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	traceID = pcommon.TraceID{0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c}
	spanID  = pcommon.SpanID{0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74}
)

// span adds a span of kind with attrs to a new resource of service in td.
func span(td ptrace.Traces, service string, kind ptrace.SpanKind, attrs map[string]any) {
	rs := td.ResourceSpans().AppendEmpty()
	if service != "" {
		rs.Resource().Attributes().PutStr("service.name", service)
	}
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetKind(kind)
	sp.SetName("span")
	sp.SetTraceID(traceID)
	sp.SetSpanID(spanID)
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(t0))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(t0.Add(1500 * time.Microsecond)))
	if err := sp.Attributes().FromRaw(attrs); err != nil {
		panic(err)
	}
}

func TestConvertStableAndOldNames(t *testing.T) {
	td := ptrace.NewTraces()
	span(td, "shop", ptrace.SpanKindServer, map[string]any{
		"http.request.method": "GET", "http.route": "/orders/{id}", "url.path": "/orders/42",
		"http.response.status_code": 200, "client.address": "203.0.113.7", "client.port": 5555,
	})
	span(td, "legacy", ptrace.SpanKindServer, map[string]any{
		"http.method": "POST", "http.target": "/carts/12345678/items?x=1", "http.status_code": "201",
		"net.peer.ip": "198.51.100.2",
	})
	span(td, "shop", ptrace.SpanKindServer, map[string]any{
		"http.method": "DELETE", "http.route": "/x", "net.sock.peer.addr": "192.0.2.1", "http.status_code": 204,
	})
	res := otlpin.Convert(td, "")
	if res.Rejected != 0 || len(res.Events) != 3 {
		t.Fatalf("rejected %d (%s), %d events; want 0, 3", res.Rejected, res.Reason, len(res.Events))
	}
	stable, old, sock := res.Events[0], res.Events[1], res.Events[2]
	if got := codecs.EndpointKey(stable); got != "shop: GET /orders/{id}" {
		t.Errorf("stable endpoint %q", got)
	}
	if stable.HttpStatus != 200 || stable.ClientHost != "203.0.113.7" || stable.ClientPort != "5555" || codecs.ClientOf(stable) != "203.0.113.7" ||
		stable.Endpoint != "/orders/42" || stable.Service != "shop" || stable.DurationUs != 1500 ||
		!stable.RequestTime.AsTime().Equal(t0) || stable.RequestId != "5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174" {
		t.Errorf("stable = %v", stable)
	}
	if got := codecs.EndpointKey(old); got != "legacy: POST /carts/{id}/items" {
		t.Errorf("old endpoint %q (route %q)", got, old.Route)
	}
	if old.HttpStatus != 201 || codecs.ClientOf(old) != "198.51.100.2" || old.Service != "legacy" {
		t.Errorf("old = %v", old)
	}
	if codecs.ClientOf(sock) != "192.0.2.1" || sock.HttpStatus != 204 {
		t.Errorf("net.sock.peer.addr = %v", sock)
	}
}

func TestConvertSkipsOtherKindsAndRejectsSpansWithoutMethod(t *testing.T) {
	td := ptrace.NewTraces()
	attrs := map[string]any{"http.request.method": "GET", "http.route": "/a", "client.address": "192.0.2.9"}
	for _, k := range []ptrace.SpanKind{ptrace.SpanKindClient, ptrace.SpanKindInternal, ptrace.SpanKindProducer, ptrace.SpanKindConsumer, ptrace.SpanKindUnspecified} {
		span(td, "s", k, attrs)
	}
	span(td, "s", ptrace.SpanKindServer, attrs)
	span(td, "s", ptrace.SpanKindServer, map[string]any{"http.route": "/a", "client.address": "192.0.2.9"})
	span(td, "s", ptrace.SpanKindServer, map[string]any{"http.route": "/b", "client.address": "192.0.2.9"})
	span(td, "s", ptrace.SpanKindServer, map[string]any{"http.method": "GET", "client.address": "192.0.2.9"})
	res := otlpin.Convert(td, "")
	if len(res.Events) != 1 || res.Rejected != 3 {
		t.Fatalf("%d events, %d rejected (%s); want 1, 3", len(res.Events), res.Rejected, res.Reason)
	}
	if !strings.Contains(res.Reason, "2 server spans without http.request.method") || !strings.Contains(res.Reason, "1 server spans without http.route") {
		t.Errorf("reason %q", res.Reason)
	}
}

func TestConvertClientAttribute(t *testing.T) {
	td := ptrace.NewTraces()
	span(td, "s", ptrace.SpanKindServer, map[string]any{"http.request.method": "GET", "http.route": "/a", "client.address": "192.0.2.9", "enduser.id": "alice"})
	span(td, "s", ptrace.SpanKindServer, map[string]any{"http.request.method": "GET", "http.route": "/a", "client.address": "192.0.2.9"})
	span(td, "s", ptrace.SpanKindServer, map[string]any{"http.request.method": "GET", "http.route": "/a", "enduser.id": "bob"})
	span(td, "s", ptrace.SpanKindServer, map[string]any{"http.request.method": "GET", "http.route": "/a"})
	res := otlpin.Convert(td, "enduser.id")
	if len(res.Events) != 3 || res.Rejected != 1 || !strings.Contains(res.Reason, "without enduser.id or client.address") {
		t.Fatalf("%d events, %d rejected (%s); want 3, 1", len(res.Events), res.Rejected, res.Reason)
	}
	for i, want := range []string{"alice", "192.0.2.9", "bob"} {
		if got := codecs.ClientOf(res.Events[i]); got != want {
			t.Errorf("event %d counted under %q, want %q", i, got, want)
		}
	}
	if res.Events[0].ClientHost != "192.0.2.9" {
		t.Errorf("the address is kept as the host: %v", res.Events[0])
	}
}

// batch is a request with one good and one rejected server span.
func batch() ptraceotlp.ExportRequest {
	td := ptrace.NewTraces()
	span(td, "shop", ptrace.SpanKindServer, map[string]any{"http.request.method": "GET", "http.route": "/a", "client.address": "192.0.2.9"})
	span(td, "shop", ptrace.SpanKindServer, map[string]any{"http.route": "/a", "client.address": "192.0.2.9"})
	span(td, "shop", ptrace.SpanKindClient, map[string]any{"http.request.method": "GET"})
	return ptraceotlp.NewExportRequestFromTraces(td)
}

func encode(t *testing.T, ct string, gz bool) []byte {
	t.Helper()
	var b []byte
	var err error
	if ct == otlpin.ContentTypeJSON {
		b, err = batch().MarshalJSON()
	} else {
		b, err = batch().MarshalProto()
	}
	if err != nil {
		t.Fatal(err)
	}
	if gz {
		b = gzipped(t, b)
	}
	return b
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func post(h http.Handler, ct, enc string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, otlpin.Path, bytes.NewReader(body))
	if ct != "" {
		r.Header.Set("Content-Type", ct)
	}
	if enc != "" {
		r.Header.Set("Content-Encoding", enc)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func receiver(t *testing.T, pub otlpin.Publisher, opts ...otlpin.Option) http.Handler {
	t.Helper()
	routes := otlpin.Routes(pub, opts...)
	if len(routes) != 2 || routes[0].Method != http.MethodPost || routes[0].Path != "/v1/traces" || routes[0].Scope != auth.EventsWrite ||
		routes[1].Method != http.MethodPost || routes[1].Path != "/events" || routes[1].Scope != auth.EventsWrite {
		t.Fatalf("routes = %+v", routes)
	}
	return routes[0].Handler
}

func TestEncodings(t *testing.T) {
	for _, ct := range []string{otlpin.ContentTypeProtobuf, otlpin.ContentTypeJSON} {
		for _, gz := range []bool{false, true} {
			name := ct
			enc := ""
			if gz {
				name, enc = ct+"+gzip", "gzip"
			}
			t.Run(name, func(t *testing.T) {
				pub := &fakePub{room: 10, healthy: true}
				w := post(receiver(t, pub), ct, enc, encode(t, ct, gz))
				if w.Code != http.StatusOK || w.Header().Get("Content-Type") != ct {
					t.Fatalf("%d %s: %s", w.Code, w.Header().Get("Content-Type"), w.Body)
				}
				resp := ptraceotlp.NewExportResponse()
				var err error
				if ct == otlpin.ContentTypeJSON {
					err = resp.UnmarshalJSON(w.Body.Bytes())
				} else {
					err = resp.UnmarshalProto(w.Body.Bytes())
				}
				if err != nil {
					t.Fatalf("response: %v: %q", err, w.Body)
				}
				if ps := resp.PartialSuccess(); ps.RejectedSpans() != 1 || !strings.Contains(ps.ErrorMessage(), "1 server spans without http.request.method") {
					t.Errorf("partial success %d %q", ps.RejectedSpans(), ps.ErrorMessage())
				}
				if len(pub.events) != 1 || codecs.EndpointKey(pub.events[0]) != "shop: GET /a" || pub.events[0].Service != "shop" {
					t.Errorf("published %v", pub.events)
				}
			})
		}
	}
}

func TestOTLPJSONHexIDsAndIntegerKinds(t *testing.T) {
	// The spec's example shape: hex ids, enum as integer, int64 as string.
	body := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"shop"}}]},
	"scopeSpans":[{"spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","name":"GET /a","kind":2,
	"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712660000250000",
	"attributes":[{"key":"http.request.method","value":{"stringValue":"GET"}},{"key":"url.path","value":{"stringValue":"/users/7"}},
	{"key":"http.response.status_code","value":{"intValue":"404"}},{"key":"client.address","value":{"stringValue":"192.0.2.4"}}]}]}]}]}`
	pub := &fakePub{room: 10, healthy: true}
	w := post(receiver(t, pub), "application/json; charset=utf-8", "", []byte(body))
	if w.Code != 200 {
		t.Fatalf("%d: %s", w.Code, w.Body)
	}
	var resp map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || len(resp) != 0 && resp["partialSuccess"] != nil && len(resp["partialSuccess"].(map[string]any)) != 0 {
		t.Errorf("response %s (%v), want no partial success", w.Body, err)
	}
	if len(pub.events) != 1 {
		t.Fatalf("published %v", pub.events)
	}
	ev := pub.events[0]
	if codecs.EndpointKey(ev) != "shop: GET /users/{id}" || ev.HttpStatus != 404 || ev.DurationUs != 250 || ev.Service != "shop" ||
		ev.RequestId != "5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174" || ev.RequestTime.AsTime().UnixNano() != 1544712660000000000 {
		t.Errorf("event %v", ev)
	}
}

func TestRefusals(t *testing.T) {
	pub := &fakePub{room: 10, healthy: true}
	h := receiver(t, pub, otlpin.WithMaxBodyBytes(1024))
	proto := encode(t, otlpin.ContentTypeProtobuf, false)
	big := ptrace.NewTraces()
	for range 60 { // about 10 KB: over the limit, under 16 times it
		span(big, "s", ptrace.SpanKindServer, map[string]any{"http.request.method": "GET", "http.route": "/a", "client.address": "192.0.2.9"})
	}
	bigProto, err := ptraceotlp.NewExportRequestFromTraces(big).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, ct, enc string
		body          []byte
		want          int
	}{
		{"text/plain", "text/plain", "", proto, 415},
		{"no content type", "", "", proto, 415},
		{"latin1 JSON", "application/json; charset=latin1", "", []byte(`{}`), 415},
		{"unknown encoding", otlpin.ContentTypeProtobuf, "br", proto, 415},
		{"bad protobuf", otlpin.ContentTypeProtobuf, "", []byte("garbage"), 400},
		{"bad JSON", otlpin.ContentTypeJSON, "", []byte(`{"resourceSpans":`), 400},
		{"JSON null", otlpin.ContentTypeJSON, "", []byte(`null`), 400},
		{"two JSON values", otlpin.ContentTypeJSON, "", []byte(`{} {}`), 400},
		{"base64 trace id", otlpin.ContentTypeJSON, "", []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"W47/95gDgQPSabYzgT/GDA==","kind":2}]}]}]}`), 400},
		{"not gzip", otlpin.ContentTypeProtobuf, "gzip", proto, 400},
		{"truncated gzip", otlpin.ContentTypeProtobuf, "gzip", gzipped(t, bigProto)[:40], 400},
		{"over the limit", otlpin.ContentTypeProtobuf, "", bigProto, 413},
		{"inflates over the limit", otlpin.ContentTypeProtobuf, "gzip", gzipped(t, make([]byte, 17*1024)), 413},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := post(h, c.ct, c.enc, c.body)
			if w.Code != c.want || w.Header().Get("Content-Type") != "application/problem+json" {
				t.Errorf("%d %s, want %d problem: %s", w.Code, w.Header().Get("Content-Type"), c.want, w.Body)
			}
		})
	}
	if len(pub.events) != 0 {
		t.Errorf("refused requests published %d events", len(pub.events))
	}
	// Gzip lets a body that inflates past the wire limit through.
	if w := post(h, otlpin.ContentTypeProtobuf, "gzip", gzipped(t, bigProto)); w.Code != http.StatusTooManyRequests || len(pub.events) != 0 {
		t.Errorf("gzipped big batch: %d, %d events; want 429 (60 events, room for 10)", w.Code, len(pub.events))
	}
}

func TestFullPublisherRefusesTheWholeBatch(t *testing.T) {
	for _, healthy := range []bool{true, false} {
		pub := &fakePub{room: 1, healthy: healthy}
		h := receiver(t, pub)
		td := ptrace.NewTraces()
		for range 2 {
			span(td, "s", ptrace.SpanKindServer, map[string]any{"http.request.method": "GET", "http.route": "/a", "client.address": "192.0.2.9"})
		}
		body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
		if err != nil {
			t.Fatal(err)
		}
		w := post(h, otlpin.ContentTypeProtobuf, "", body)
		want := http.StatusTooManyRequests
		if !healthy {
			want = http.StatusServiceUnavailable
		}
		if w.Code != want || w.Header().Get("Retry-After") != "1" {
			t.Errorf("healthy %v: %d, Retry-After %q; want %d, 1", healthy, w.Code, w.Header().Get("Retry-After"), want)
		}
		if len(pub.events) != 0 {
			t.Errorf("healthy %v: %d events of a refused batch were taken", healthy, len(pub.events))
		}
	}
}

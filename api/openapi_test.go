package api_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/alerts"
	"github.com/inarious/inarious/internal/alertshttp"
	"github.com/inarious/inarious/internal/auth"
	"github.com/inarious/inarious/internal/dashboard"
	"github.com/inarious/inarious/internal/endpointshttp"
	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/metrics"
	"github.com/inarious/inarious/internal/otlpin"
	"github.com/inarious/inarious/internal/quotas"
	"github.com/inarious/inarious/internal/quotas/enforce"
	"github.com/inarious/inarious/internal/quotas/quotahttp"
	"github.com/inarious/inarious/internal/quotas/quotastest"
	"github.com/inarious/inarious/internal/usagehttp"
	"github.com/inarious/inarious/internal/users"
	"github.com/inarious/inarious/internal/users/boltstore"
	"github.com/inarious/inarious/internal/users/userhttp"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/processors/endpoints"
	"github.com/inarious/inarious/views/viewstest"
)

// openAPIServer builds the API the way app.RunAPI does: api.New with the
// users resource on a real bolt store, the dashboard (its hub closed, so
// its event stream ends at once) and /metrics, declared as
// internal/app/observe.go declares it.
func openAPIServer(t *testing.T, opts ...api.Option) *api.Server {
	t.Helper()
	store, err := boltstore.Open(filepath.Join(t.TempDir(), "users.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	pub := api.NewPublisher(&fakeEmitter{}, 1024)
	t.Cleanup(func() { _ = pub.Close(context.Background()) })
	cr, err := api.NewClientResolver(nil)
	if err != nil {
		t.Fatal(err)
	}
	usage := openAPIUsage()
	hub := dashboard.NewHub(dashboard.WithLogger(slog.New(slog.DiscardHandler)), dashboard.WithEndpoints(fakeEndpoints()),
		dashboard.WithAlerts(fakeDashboardAlerts))
	hub.Close()
	routes := append(userhttp.Routes(store), hub.Routes()...)
	routes = append(routes, alertshttp.Routes(fakeAlerting())...)
	routes = append(routes, httpx.Route{Method: http.MethodGet, Path: "/metrics", Scope: auth.Public, Handler: metrics.New().Handler()})
	routes = append(routes, endpointshttp.Routes(fakeEndpoints(), endpointshttp.WithLogger(slog.New(slog.DiscardHandler)))...)
	routes = append(routes, otlpin.Routes(pub, otlpin.WithLogger(slog.New(slog.DiscardHandler)))...)
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	windowed := viewstest.NewWindowed(usage, []windows.Bucket{
		{Start: t0, Step: time.Minute, Total: 3, Endpoints: map[string]uint64{"GET /usage/{client}": 2, "POST /users": 1}, Final: true,
			Status: map[string]codecs.StatusCounts{"GET /usage/{client}": {codecs.Class2xx: 1, codecs.Class4xx: 1}, "POST /users": {codecs.Class5xx: 1}}},
		{Start: t0.Add(time.Minute), Step: time.Minute, Total: 1, Endpoints: map[string]uint64{"POST /users": 1}},
	})
	policies := quotastest.NewStore()
	routes = append(routes, quotahttp.Routes(policies, enforce.New(policies, windowed, enforce.DefaultConfig()), windows.Default())...)
	srv, err := newAPI(windowed, pub, cr, append([]api.Option{api.WithRoutes(routes...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// openAPIUsage is the usage table of openAPIServer: two clients.
// fakeAlerting serves one rule and one active alert; rules written go
// straight into the rules read.
func fakeAlerting() alertshttp.Deps {
	rules := alerts.NewRules()
	rules.Set(alerts.Rule{Name: "bob-errors", Kind: alerts.ClientErrorRate, Client: "bob", Window: "1h", Thresholds: []float64{5, 20},
		MinCalls: 50, Webhook: &alerts.Webhook{URL: "https://hooks.example.com/x", Secret: "s"}, UpdatedAt: time.Now().UTC()})
	return alertshttp.Deps{Rules: rules, Writer: directRules{rules}, Active: fakeActive{fakeAlert()}, Windows: windows.Default(),
		Log: slog.New(slog.DiscardHandler)}
}

func fakeAlert() *alerts.Alert {
	start := time.Now().UTC().Truncate(time.Hour)
	return &alerts.Alert{ID: "0f1e2d3c4b5a69788796a5b4c3d2e1f0", Rule: "alice-hour", Kind: alerts.ClientUsage, Client: "alice", Window: "1h",
		WindowStart: start, WindowEnd: start.Add(time.Hour), Threshold: 80, Limit: 1000, Value: 800, FiredAt: time.Now().UTC()}
}

func fakeDashboardAlerts() []dashboard.AlertRow {
	a := fakeAlert()
	return []dashboard.AlertRow{{ID: a.ID, Rule: a.Rule, Kind: string(a.Kind), Key: a.Client, Window: a.Window, Threshold: a.Threshold,
		Limit: a.Limit, Value: a.Value, WindowEnd: a.WindowEnd, FiredAt: a.FiredAt}}
}

type directRules struct{ rules *alerts.Rules }

func (d directRules) Put(r alerts.Rule) error  { d.rules.Set(r); return nil }
func (d directRules) Delete(name string) error { d.rules.Delete(name); return nil }

type fakeActive []*alerts.Alert

func (f fakeActive) List() []*alerts.Alert { return f }

func openAPIUsage() fakeUsage {
	seen := timestamppb.Now()
	return fakeUsage{
		"alice": {Client: "alice", Total: 4, FirstSeen: seen, LastSeen: seen, Endpoints: map[string]*activitypb.EndpointUsage{
			"/usage":                   {Count: 2, LastSeen: seen, StatusClasses: []uint64{0, 1, 0, 1}},
			"/users":                   {Count: 1, StatusClasses: []uint64{0, 0, 0, 0, 0, 1}},
			"orders: GET /orders/{id}": {Count: 1, LastSeen: seen, StatusClasses: []uint64{0, 1}},
		}},
		"bob": {Client: "bob", Total: 1},
	}
}

// fakeEndpoints is an endpoints table of two endpoints, one with two
// minute buckets before now.
func fakeEndpoints() *viewstest.Endpoints {
	row := func(calls uint64, class int, ms ...int64) *endpoints.Row {
		r := endpoints.NewRow()
		r.Calls, r.Status[class], r.FirstSeen, r.LastSeen = calls, calls, time.Now().UTC(), time.Now().UTC()
		for _, d := range ms {
			r.Latency.Add(d * 1000)
		}
		r.Clients.Add("alice")
		return r
	}
	minute := time.Now().UTC().Truncate(time.Minute)
	return viewstest.NewEndpoints(map[string]*endpoints.Row{
		"GET /users/{id}": row(5, codecs.Class2xx, 3, 4, 120),
		"POST /users":     row(2, codecs.Class4xx),
		endpoints.BucketKey("GET /users/{id}", time.Minute, minute.Add(-3*time.Minute).Unix()): row(2, codecs.Class2xx, 3, 4),
		endpoints.BucketKey("GET /users/{id}", time.Minute, minute.Add(-time.Minute).Unix()):   row(3, codecs.Class5xx, 120),
	})
}

// loadDocument fetches /openapi.json from srv and loads it with kin-openapi.
func loadDocument(t *testing.T, srv http.Handler) *openapi3.T {
	t.Helper()
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /openapi.json = %d: %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if !json.Valid(rec.Body.Bytes()) {
		t.Fatal("/openapi.json is not valid JSON")
	}
	if committed, err := os.ReadFile("openapi.json"); err != nil || !bytes.Equal(rec.Body.Bytes(), committed) {
		t.Errorf("/openapi.json differs from the committed api/openapi.json (%v)", err)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(rec.Body.Bytes())
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("the document is not valid OpenAPI: %v", err)
	}
	return doc
}

// undocumentedPrefixes are the prefix routes served but not in the
// document, which cannot describe a path prefix. Keep it short; every entry
// must say what it serves.
var undocumentedPrefixes = map[string]string{
	"/dashboard/assets/": "the dashboard page's static files",
}

// routerOperations returns "METHOD /template" for every route the server
// declares, HEAD left out (every GET route answers it).
func routerOperations(t *testing.T, srv *api.Server) map[string]httpx.Route {
	t.Helper()
	ops := map[string]httpx.Route{}
	for _, rt := range srv.Routes() {
		switch {
		case rt.Prefix:
			if _, ok := undocumentedPrefixes[rt.Path]; !ok {
				t.Errorf("prefix route %q cannot be described in the document", rt.Path)
			}
		case rt.Method == "":
			t.Errorf("route %q matches every method; declare its method", rt.Path)
		default:
			ops[rt.Method+" "+rt.Path] = rt
		}
	}
	return ops
}

func documentOperations(doc *openapi3.T) map[string]bool {
	ops := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for m := range item.Operations() {
			ops[m+" "+path] = true
		}
	}
	return ops
}

// routeDiff lists what one side has and the other lacks.
func routeDiff(router map[string]httpx.Route, doc map[string]bool) (undocumented, unrouted []string) {
	for op := range router {
		if !doc[op] {
			undocumented = append(undocumented, op)
		}
	}
	for op := range doc {
		if _, ok := router[op]; !ok {
			unrouted = append(unrouted, op)
		}
	}
	sort.Strings(undocumented)
	sort.Strings(unrouted)
	return undocumented, unrouted
}

func TestOpenAPIDocumentMatchesRouter(t *testing.T) {
	srv := openAPIServer(t)
	doc := loadDocument(t, srv)
	routes := routerOperations(t, srv)

	undocumented, unrouted := routeDiff(routes, documentOperations(doc))
	for _, op := range undocumented {
		t.Errorf("%s is routed but not in api/openapi.json", op)
	}
	for _, op := range unrouted {
		t.Errorf("%s is in api/openapi.json but not routed", op)
	}
	for prefix := range undocumentedPrefixes {
		if !slices.ContainsFunc(srv.Routes(), func(rt httpx.Route) bool { return rt.Prefix && rt.Path == prefix }) {
			t.Errorf("undocumentedPrefixes lists %s, which is not routed; drop it", prefix)
		}
	}
	// Sanity: the table holds the core routes and those of the other packages.
	for _, op := range []string{"GET /healthz", "GET /usage/{client}", "PATCH /users/{id}", "GET /openapi.json", "GET /metrics", "GET /dashboard/events", "GET /endpoints/{endpoint}/series"} {
		if _, ok := routes[op]; !ok {
			t.Errorf("route table lacks %s", op)
		}
	}
}

// TestOpenAPIDiffCatchesUndocumentedRoute proves the check above has teeth:
// a route added without documenting it is reported.
func TestOpenAPIDiffCatchesUndocumentedRoute(t *testing.T) {
	ignore := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	srv := openAPIServer(t, api.WithRoutes(
		httpx.Route{Method: http.MethodGet, Path: "/users/{id}/avatar", Scope: auth.UsersRead, Handler: ignore},
		httpx.Route{Method: http.MethodDelete, Path: "/usage", Scope: auth.Admin, Handler: ignore},
	))
	undocumented, unrouted := routeDiff(routerOperations(t, srv), documentOperations(loadDocument(t, srv)))
	for _, op := range []string{"DELETE /usage", "GET /users/{id}/avatar"} {
		if !slices.Contains(undocumented, op) {
			t.Errorf("undocumented = %v, want it to include %s", undocumented, op)
		}
	}
	if len(unrouted) != 0 {
		t.Errorf("unrouted = %v, want none", unrouted)
	}
}

func init() {
	// kin-openapi decodes no HTML or event streams; the document types both as strings.
	openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
	openapi3filter.RegisterBodyDecoder("text/event-stream", openapi3filter.PlainBodyDecoder)
	// OTLP's protobuf bodies are opaque bytes to the document.
	openapi3filter.RegisterBodyDecoder(otlpin.ContentTypeProtobuf, openapi3filter.FileBodyDecoder)
}

// otlpSpans are an OTLP batch: a server span of shop's GET /orders/{id}
// from 192.0.2.4, a server span without a method (rejected) and a client
// span (skipped).
func otlpSpans() ptraceotlp.ExportRequest {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "shop")
	spans := rs.ScopeSpans().AppendEmpty().Spans()
	for i, attrs := range []map[string]any{
		{"http.request.method": "GET", "http.route": "/orders/{id}", "http.response.status_code": 200, "client.address": "192.0.2.4"},
		{"http.route": "/orders/{id}", "client.address": "192.0.2.4"},
		{"http.request.method": "GET", "url.full": "http://upstream/x"},
	} {
		sp := spans.AppendEmpty()
		sp.SetKind(ptrace.SpanKindServer)
		if i == 2 {
			sp.SetKind(ptrace.SpanKindClient)
		}
		sp.SetTraceID(pcommon.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
		sp.SetSpanID(pcommon.SpanID{1, 2, 3, 4, 5, 6, 7, byte(i)})
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(time.Now().Add(-time.Second)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(time.Now()))
		if err := sp.Attributes().FromRaw(attrs); err != nil {
			panic(err)
		}
	}
	return ptraceotlp.NewExportRequestFromTraces(td)
}

// eventsBatch is a batch for POST /events: one event, one item without a method.
const eventsBatch = `[{"id":"e1","client":"alice","httpMethod":"GET","route":"/orders/{id}","httpStatus":200,"service":"shop"},` +
	`{"id":"e2","client":"alice","route":"/orders/{id}"}]`

// eventsExample is the document's example request of POST /events.
func eventsExample(t *testing.T, doc *openapi3.T) string {
	t.Helper()
	return requestExample(t, doc, http.MethodPost, "/events")
}

// requestExample is the document's example JSON request of method path.
func requestExample(t *testing.T, doc *openapi3.T, method, path string) string {
	t.Helper()
	ex := doc.Paths.Value(path).GetOperation(method).RequestBody.Value.Content["application/json"].Example
	b, err := json.Marshal(ex)
	if err != nil || ex == nil {
		t.Fatalf("%s %s has no example request: %v", method, path, err)
	}
	return string(b)
}

// parameterExample is a request of the GET at path made of its parameters'
// examples: the path's filled in, the query's appended.
func parameterExample(t *testing.T, doc *openapi3.T, path string) string {
	t.Helper()
	item := doc.Paths.Value(path)
	q := url.Values{}
	for _, ps := range []openapi3.Parameters{item.Parameters, item.Get.Parameters} {
		for _, p := range ps {
			switch v := p.Value; {
			case v.Example == nil:
			case v.In == "path":
				path = strings.ReplaceAll(path, "{"+v.Name+"}", url.PathEscape(fmt.Sprint(v.Example)))
			case v.In == "query":
				q.Set(v.Name, fmt.Sprint(v.Example))
			}
		}
	}
	if strings.Contains(path, "{") {
		t.Fatalf("GET %s: a path parameter has no example", path)
	}
	return path + "?" + q.Encode()
}

// otlpBodies are otlpSpans as OTLP/JSON, protobuf and gzipped protobuf.
func otlpBodies(t *testing.T) (jsonBody, protoBody, gzipBody string) {
	t.Helper()
	j, err := otlpSpans().MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	p, err := otlpSpans().MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(p)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return string(j), string(p), gz.String()
}

// conformance sends real requests through the real router and validates the
// requests and the handlers' responses against the document.
type conformance struct {
	t      *testing.T
	srv    http.Handler
	router routers.Router
	// statuses records which documented responses were exercised.
	statuses map[string]bool
}

type call struct {
	method, path, body string
	header             map[string]string
	status             int
	// docRejects: the request itself breaks the document (e.g. limit=0),
	// so request validation must fail; the response must still conform.
	docRejects bool
}

func (c *conformance) do(k call) *httptest.ResponseRecorder {
	c.t.Helper()
	newReq := func() *http.Request {
		var body *strings.Reader
		if k.body != "" {
			body = strings.NewReader(k.body)
		}
		var r *http.Request
		if body != nil {
			r = httptest.NewRequest(k.method, k.path, body)
			r.Header.Set("Content-Type", "application/json")
		} else {
			r = httptest.NewRequest(k.method, k.path, nil)
		}
		for h, v := range k.header {
			r.Header.Set(h, v)
		}
		return r
	}
	rec := httptest.NewRecorder()
	c.srv.ServeHTTP(rec, newReq())
	if rec.Code != k.status {
		c.t.Fatalf("%s %s = %d, want %d: %s", k.method, k.path, rec.Code, k.status, rec.Body)
	}

	req := newReq()
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		c.t.Fatalf("%s %s: no documented operation: %v", k.method, k.path, err)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}
	ctx := context.Background()
	err = openapi3filter.ValidateRequest(ctx, in)
	switch {
	case k.docRejects && err == nil:
		c.t.Errorf("%s %s: the document accepts this request, but the server answered %d", k.method, k.path, rec.Code)
	case !k.docRejects && err != nil:
		c.t.Errorf("%s %s: request does not conform: %v", k.method, k.path, err)
	}

	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 rec.Code,
		Header:                 rec.Header(),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	out.SetBodyBytes(rec.Body.Bytes())
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		c.t.Errorf("%s %s → %d: response does not conform: %v\nbody: %s", k.method, k.path, rec.Code, err, rec.Body)
	}
	c.statuses[route.Method+" "+route.Path+" "+http.StatusText(rec.Code)] = true
	return rec
}

func TestOpenAPIResponsesConform(t *testing.T) {
	srv := openAPIServer(t)
	doc := loadDocument(t, srv)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	c := &conformance{t: t, srv: srv, router: router, statuses: map[string]bool{}}

	c.do(call{method: "GET", path: "/healthz", status: 200, header: map[string]string{"X-Request-Id": "abc-123"}})
	c.do(call{method: "GET", path: "/", status: 200})
	c.do(call{method: "GET", path: "/readyz", status: 200})
	c.do(call{method: "GET", path: "/openapi.json", status: 200})

	c.do(call{method: "GET", path: "/usage", status: 200})
	rec := c.do(call{method: "GET", path: "/usage?limit=1", status: 200})
	var first usagehttp.UsagePage
	if err := json.Unmarshal(rec.Body.Bytes(), &first); err != nil || first.NextCursor == "" || len(first.Clients) != 1 || first.Total != 2 {
		t.Fatalf("limit=1 page: %s (%v)", rec.Body, err)
	}
	if rec := c.do(call{method: "GET", path: "/usage?limit=1&cursor=" + first.NextCursor, status: 200}); !strings.Contains(rec.Body.String(), `"next_cursor":""`) {
		t.Errorf("last page has a next_cursor: %s", rec.Body)
	}
	c.do(call{method: "GET", path: "/usage?limit=0", status: 400, docRejects: true})
	c.do(call{method: "GET", path: "/usage?limit=1001", status: 400, docRejects: true})
	c.do(call{method: "GET", path: "/usage?cursor=not+base64", status: 400, docRejects: true})
	c.do(call{method: "GET", path: "/usage?cursor=AgFh", status: 400}) // well-formed to the document, not ours
	rec = c.do(call{method: "GET", path: "/usage?service=orders&limit=1", status: 200})
	var orders usagehttp.UsagePage
	if err := json.Unmarshal(rec.Body.Bytes(), &orders); err != nil || orders.Total != 1 || len(orders.Clients) != 1 || orders.Clients[0].Client != "alice" {
		t.Errorf("service=orders: %s (%v)", rec.Body, err)
	}
	c.do(call{method: "GET", path: "/usage?service=default", status: 200})
	if rec := c.do(call{method: "GET", path: "/usage?service=nothing", status: 200}); !strings.Contains(rec.Body.String(), `"clients":[]`) {
		t.Errorf("an unknown service: %s, want no clients", rec.Body)
	}
	c.do(call{method: "GET", path: "/usage?service=", status: 400, docRejects: true})
	c.do(call{method: "GET", path: "/usage?service=" + strings.Repeat("s", 129), status: 400, docRejects: true})
	c.do(call{method: "GET", path: "/usage/alice", status: 200})
	c.do(call{method: "GET", path: "/usage/bob", status: 200})
	c.do(call{method: "GET", path: "/usage/nobody", status: 404})
	c.do(call{method: "GET", path: "/usage/" + strings.Repeat("x", 257), status: 400, docRejects: true})
	c.do(call{method: "GET", path: "/usage/alice?window=5m", status: 200})
	c.do(call{method: "GET", path: "/usage/alice?window=90s", status: 400})
	c.do(call{method: "GET", path: "/usage/alice?window=644dc6xx1qfr", status: 400, docRejects: true})
	c.do(call{method: "GET", path: "/usage/alice?window=-5m", status: 400, docRejects: true})
	c.do(call{method: "GET", path: "/usage/alice/series", status: 200})
	c.do(call{method: "GET", path: "/usage/alice/series?step=1h&from=-2d&to=now", status: 200})
	c.do(call{method: "GET", path: "/usage/alice/series?step=5m", status: 400})
	c.do(call{method: "GET", path: "/usage/alice/series?from=-1h&to=-2h", status: 400})
	c.do(call{method: "GET", path: "/usage/alice/series?from=-49h", status: 400})
	c.do(call{method: "GET", path: "/usage/alice/series?from=-26h", status: 400})
	c.do(call{method: "GET", path: "/usage/alice?service=default", status: 200})
	c.do(call{method: "GET", path: "/usage/alice?service=orders&window=5m", status: 200})
	c.do(call{method: "GET", path: "/usage/alice/series?service=orders", status: 200})
	c.do(call{method: "GET", path: "/usage/alice?service=", status: 400, docRejects: true})
	c.do(call{method: "GET", path: "/usage/alice?service=" + strings.Repeat("s", 129), status: 400, docRejects: true})

	// An endpoint is one escaped segment (%2F inside); the document's router
	// matches escaped paths as the API's does for these routes.
	users := "/endpoints/GET%20%2Fusers%2F%7Bid%7D"
	rec = c.do(call{method: "GET", path: "/endpoints?limit=1", status: 200})
	var eps endpointshttp.EndpointPage
	if err := json.Unmarshal(rec.Body.Bytes(), &eps); err != nil || eps.NextCursor == "" || len(eps.Endpoints) != 1 || eps.Total != 2 {
		t.Fatalf("endpoints limit=1 page: %s (%v)", rec.Body, err)
	}
	c.do(call{method: "GET", path: "/endpoints?limit=1&cursor=" + eps.NextCursor, status: 200})
	c.do(call{method: "GET", path: "/endpoints?order=p99", status: 200})
	c.do(call{method: "GET", path: "/endpoints?order=error_rate&limit=1000", status: 200})
	c.do(call{method: "GET", path: "/endpoints?order=latency", status: 400, docRejects: true})
	c.do(call{method: "GET", path: "/endpoints?limit=0", status: 400, docRejects: true})
	c.do(call{method: "GET", path: "/endpoints?order=p99&cursor=" + eps.NextCursor, status: 400}) // another order's
	rec = c.do(call{method: "GET", path: users, status: 200})
	if !strings.Contains(rec.Body.String(), `"endpoint":"GET /users/{id}"`) {
		t.Errorf("GET %s: %s", users, rec.Body)
	}
	c.do(call{method: "GET", path: "/endpoints/GET%20%2Fnowhere", status: 404})
	c.do(call{method: "GET", path: users + "?window=5m", status: 200})
	c.do(call{method: "GET", path: users + "?window=90s", status: 400})
	c.do(call{method: "GET", path: users + "/series?from=-10m", status: 200})
	c.do(call{method: "GET", path: users + "/series?step=5m", status: 400})
	c.do(call{method: "GET", path: users + "?service=default", status: 200})
	c.do(call{method: "GET", path: users + "?service=orders", status: 404})
	c.do(call{method: "GET", path: users + "/series?service=default", status: 200})
	rec = c.do(call{method: "GET", path: "/endpoints?service=default&limit=1", status: 200})
	if err := json.Unmarshal(rec.Body.Bytes(), &eps); err != nil || len(eps.Endpoints) != 1 || eps.Total != 2 || eps.NextCursor == "" {
		t.Errorf("endpoints of the default service: %s (%v)", rec.Body, err)
	}
	rec = c.do(call{method: "GET", path: "/endpoints?service=orders", status: 200})
	if err := json.Unmarshal(rec.Body.Bytes(), &eps); err != nil || len(eps.Endpoints) != 0 || eps.Total != 0 {
		t.Errorf("endpoints of an unknown service: %s (%v)", rec.Body, err)
	}
	rec = c.do(call{method: "GET", path: "/services", status: 200})
	if !strings.Contains(rec.Body.String(), `"service":"default"`) {
		t.Errorf("GET /services: %s", rec.Body)
	}

	rec = c.do(call{method: "POST", path: "/users", body: `{"name":"Ann","email":"ann@example.com"}`, status: 201})
	var ann struct{ ID, Rev string }
	if err := json.Unmarshal(rec.Body.Bytes(), &ann); err != nil {
		t.Fatal(err)
	}
	item := "/users/" + ann.ID
	c.do(call{method: "POST", path: "/users", body: `{"name":"Ann 2","email":"ANN@example.com"}`, status: 409})
	c.do(call{method: "POST", path: "/users", body: `{"name":" Ann","email":"not an address"}`, status: 400, docRejects: true})
	c.do(call{method: "POST", path: "/users", body: `{"name":"Ann","email":"not an address"}`, status: 400}) // only net/mail can tell
	c.do(call{method: "POST", path: "/users", body: `{"name":"Ann","email":"a@example.com","admin":true}`, status: 400, docRejects: true})
	c.do(call{method: "POST", path: "/users", body: `{"name":"Ann","email":"a@example.com"}`, status: 415, docRejects: true,
		header: map[string]string{"Content-Type": "text/plain"}})
	c.do(call{method: "POST", path: "/users", body: `{"name":"` + strings.Repeat("n", 70<<10) + `","email":"a@example.com"}`, status: 413, docRejects: true})

	c.do(call{method: "GET", path: "/users", status: 200})
	c.do(call{method: "GET", path: "/users?limit=1&cursor=" + ann.ID, status: 200})
	c.do(call{method: "GET", path: "/users?limit=0", status: 400, docRejects: true})
	c.do(call{method: "GET", path: "/users?cursor=nope", status: 400, docRejects: true})

	c.do(call{method: "GET", path: item, status: 200})
	c.do(call{method: "GET", path: "/users/nope", status: 404})

	rec = c.do(call{method: "PUT", path: item, body: `{"name":"Ann","email":"ann@example.org"}`, status: 200,
		header: map[string]string{"If-Match": `"` + ann.Rev + `"`}})
	stale := map[string]string{"If-Match": `"` + ann.Rev + `"`}
	c.do(call{method: "PUT", path: item, body: `{"name":"Ann","email":"ann@example.net"}`, status: 412, header: stale})
	c.do(call{method: "PATCH", path: item, body: `{"name":"Annie"}`, status: 200,
		header: map[string]string{"Content-Type": "application/merge-patch+json", "If-Match": rec.Header().Get("ETag")}})
	c.do(call{method: "PATCH", path: item, body: `{"email":"annie@example.com"}`, status: 200})
	c.do(call{method: "PATCH", path: item, body: `{"name":null}`, status: 400, docRejects: true,
		header: map[string]string{"Content-Type": "application/merge-patch+json"}})
	c.do(call{method: "PATCH", path: item, body: `{"name":"X"}`, status: 412, header: stale})

	c.do(call{method: "DELETE", path: item, status: 400, docRejects: true, header: map[string]string{"If-Match": "unquoted"}})
	c.do(call{method: "DELETE", path: item, status: 412, header: map[string]string{"If-Match": `W/"` + ann.Rev + `"`}})
	c.do(call{method: "DELETE", path: item, status: 204, header: map[string]string{"If-Match": "*"}})
	c.do(call{method: "DELETE", path: item, status: 404})

	jsonBody, protoBody, gzipBody := otlpBodies(t)
	pb := map[string]string{"Content-Type": otlpin.ContentTypeProtobuf}
	rec = c.do(call{method: "POST", path: "/v1/traces", body: jsonBody, status: 200})
	if !strings.Contains(rec.Body.String(), `"rejectedSpans":"1"`) {
		t.Errorf("OTLP/JSON answer does not count the span without a method: %s", rec.Body)
	}
	c.do(call{method: "POST", path: "/v1/traces", body: `{}`, status: 200})
	c.do(call{method: "POST", path: "/v1/traces", body: protoBody, status: 200, header: pb})
	c.do(call{method: "POST", path: "/v1/traces", body: gzipBody, status: 200,
		header: map[string]string{"Content-Type": otlpin.ContentTypeProtobuf, "Content-Encoding": "gzip"}})
	c.do(call{method: "POST", path: "/v1/traces", body: `{"resourceSpans":42}`, status: 400, docRejects: true})
	c.do(call{method: "POST", path: "/v1/traces", body: "garbage", status: 400, header: pb}) // only a decoder can tell
	c.do(call{method: "POST", path: "/v1/traces", body: protoBody, status: 415, docRejects: true,
		header: map[string]string{"Content-Type": "text/plain"}})
	c.do(call{method: "POST", path: "/v1/traces", body: strings.Repeat("x", 70<<10), status: 413, header: pb})
	rec = c.do(call{method: "POST", path: "/events", body: eventsExample(t, doc), status: 200})
	if !strings.Contains(rec.Body.String(), `"accepted":2,"rejected":0`) {
		t.Errorf("the document's example batch was not taken whole: %s", rec.Body)
	}
	rec = c.do(call{method: "POST", path: "/events", body: eventsBatch, status: 200,
		header: map[string]string{"Content-Type": "application/json; charset=utf-8"}})
	if !strings.Contains(rec.Body.String(), `"accepted":1,"rejected":1`) {
		t.Errorf("the item without a method was not rejected: %s", rec.Body)
	}
	c.do(call{method: "POST", path: "/events", body: `{"client":"alice"}`, status: 400, docRejects: true})
	c.do(call{method: "POST", path: "/events", body: `[]`, status: 400, docRejects: true})
	c.do(call{method: "POST", path: "/events", body: `[{"client":"alice"},42]`, status: 400, docRejects: true})
	c.do(call{method: "POST", path: "/events", body: eventsBatch, status: 415, docRejects: true,
		header: map[string]string{"Content-Type": "text/plain"}})
	c.do(call{method: "POST", path: "/events", body: "[" + strings.Repeat(`{"client":"`+strings.Repeat("c", 80)+`"},`, 900) + `{}]`, status: 413})
	// A publisher without room refuses the batch whole: 429 and Retry-After.
	full := api.NewPublisher(&fakeEmitter{}, 0)
	t.Cleanup(func() { _ = full.Close(context.Background()) })
	cr, err := api.NewClientResolver(nil)
	if err != nil {
		t.Fatal(err)
	}
	fullSrv, err := api.New(full, cr, api.WithRoutes(otlpin.Routes(full, otlpin.WithLogger(slog.New(slog.DiscardHandler)))...))
	if err != nil {
		t.Fatal(err)
	}
	busy := *c
	busy.srv = fullSrv
	if rec := busy.do(call{method: "POST", path: "/v1/traces", body: protoBody, status: 429, header: pb}); rec.Header().Get("Retry-After") != "1" {
		t.Errorf("429 without Retry-After: %v", rec.Header())
	}
	if rec := busy.do(call{method: "POST", path: "/events", body: eventsBatch, status: 429}); rec.Header().Get("Retry-After") != "1" {
		t.Errorf("429 without Retry-After: %v", rec.Header())
	}

	c.do(call{method: "GET", path: "/alerts", status: 200})
	c.do(call{method: "GET", path: "/alerts/rules", status: 200})
	c.do(call{method: "GET", path: "/alerts/rules/bob-errors", status: 200})
	c.do(call{method: "GET", path: "/alerts/rules/nope", status: 404})
	// Each of the document's example rules is taken as it is.
	ruleExamples := doc.Paths.Value("/alerts/rules/{name}").Put.RequestBody.Value.Content["application/json"].Examples
	if len(ruleExamples) < 2 {
		t.Fatalf("PUT /alerts/rules/{name} has %d example requests, want one on a limit and one on a quota", len(ruleExamples))
	}
	var ruleExample []byte
	for name, ex := range ruleExamples {
		b, err := json.Marshal(ex.Value.Value)
		if err != nil || string(b) == "null" {
			t.Fatalf("example %s: %v", name, err)
		}
		if strings.Contains(string(b), "whsec") {
			ruleExample = b
		}
		c.do(call{method: "PUT", path: "/alerts/rules/example-" + name, body: string(b), status: 201})
		c.do(call{method: "DELETE", path: "/alerts/rules/example-" + name, status: 204})
	}
	c.do(call{method: "PUT", path: "/alerts/rules/alice-minute", body: string(ruleExample), status: 201})
	if rec := c.do(call{method: "PUT", path: "/alerts/rules/alice-minute", body: string(ruleExample), status: 200}); strings.Contains(rec.Body.String(), "whsec") {
		t.Errorf("the webhook's secret is shown: %s", rec.Body)
	}
	c.do(call{method: "PUT", path: "/alerts/rules/x", body: `{"kind":"client_usage","client":"a","window":"1m","limit":5}`, status: 400, docRejects: true})
	c.do(call{method: "PUT", path: "/alerts/rules/x", body: `{"kind":"client_usage","client":"a","window":"5m","limit":5,"thresholds":[100]}`, status: 400})
	c.do(call{method: "PUT", path: "/alerts/rules/x", body: `{"kind":"endpoint_p99","endpoint":"*","window":"1m","thresholds":[250],"quota":"1m"}`, status: 400})
	// A rule on a quota: a window not kept, thresholds out of order or
	// range, a limit beside the quota, no window nor quota.
	c.do(call{method: "PUT", path: "/alerts/rules/x", body: `{"kind":"client_usage","client":"*","quota":"5m","thresholds":[80]}`, status: 400})
	c.do(call{method: "PUT", path: "/alerts/rules/x", body: `{"kind":"client_usage","client":"*","quota":"1m","thresholds":[100,80]}`, status: 400})
	c.do(call{method: "PUT", path: "/alerts/rules/x", body: `{"kind":"client_usage","client":"*","quota":"1m","thresholds":[80,20000]}`, status: 400})
	c.do(call{method: "PUT", path: "/alerts/rules/x", body: `{"kind":"client_usage","client":"*","quota":"1m","thresholds":[0]}`, status: 400, docRejects: true})
	c.do(call{method: "PUT", path: "/alerts/rules/x", body: `{"kind":"client_usage","client":"*","quota":"1m","limit":10,"thresholds":[80]}`, status: 400})
	c.do(call{method: "PUT", path: "/alerts/rules/x", body: `{"kind":"client_usage","client":"*","limit":10,"thresholds":[80]}`, status: 400, docRejects: true})
	c.do(call{method: "PUT", path: "/alerts/rules/x", body: string(ruleExample), status: 415, docRejects: true, header: map[string]string{"Content-Type": "text/plain"}})
	c.do(call{method: "PUT", path: "/alerts/rules/x", body: `{"client":"` + strings.Repeat("c", 70<<10) + `"}`, status: 413, docRejects: true})
	c.do(call{method: "DELETE", path: "/alerts/rules/alice-minute", status: 204})
	c.do(call{method: "DELETE", path: "/alerts/rules/alice-minute", status: 404})

	c.do(call{method: "GET", path: "/metrics", status: 200})
	c.do(call{method: "GET", path: "/dashboard", status: 200})
	c.do(call{method: "GET", path: "/dashboard/events", status: 200})
	c.do(call{method: "GET", path: "/dashboard/endpoints/series?endpoint=" + url.QueryEscape("GET /users/{id}"), status: 200})
	c.do(call{method: "GET", path: "/dashboard/endpoints/series", status: 400, docRejects: true})

	// The document's example policy is taken as it is; limits the document
	// refuses are refused.
	policy := requestExample(t, doc, http.MethodPut, "/quotas/{client}")
	c.do(call{method: "PUT", path: "/quotas/alice", body: policy, status: 201})
	c.do(call{method: "PUT", path: "/quotas/alice", body: policy, status: 200})
	c.do(call{method: "PUT", path: "/quotas/*", body: `{"limits":[{"window":"1h","limit":5}]}`, status: 201})
	c.do(call{method: "GET", path: "/quotas", status: 200})
	c.do(call{method: "GET", path: "/quotas/alice", status: 200})
	c.do(call{method: "GET", path: "/quotas/bob", status: 404})
	c.do(call{method: "GET", path: "/quotas/" + strings.Repeat("x", 257), status: 400, docRejects: true})
	c.do(call{method: "PUT", path: "/quotas/alice", body: `{"limits":[{"window":"5m","limit":1}]}`, status: 400}) // only the windows kept can tell
	c.do(call{method: "PUT", path: "/quotas/alice", body: `{"limits":[{"window":"1m","limit":-1}]}`, status: 400, docRejects: true})
	c.do(call{method: "PUT", path: "/quotas/alice", body: `{"limits":[{"window":"1m","limit":1,"burst":2}]}`, status: 400, docRejects: true})
	c.do(call{method: "PUT", path: "/quotas/alice", body: `{"limits":[]}`, status: 400, docRejects: true})
	c.do(call{method: "PUT", path: "/quotas/alice", body: policy, status: 415, docRejects: true, header: map[string]string{"Content-Type": "text/plain"}})
	// With a limit of another service's endpoint too (before any check, which
	// would keep the policy read for the limiter's refresh).
	c.do(call{method: "PUT", path: "/quotas/alice", status: 200,
		body: strings.TrimSuffix(policy, "]}") + `,{"window":"1m","limit":10,"service":"shop","endpoint":"GET /orders/{id}"}]}`})
	rec = c.do(call{method: "GET", path: "/quotas/alice/check?endpoint=POST%20%2Fusers", status: 200})
	if got := rec.Header().Get("RateLimit"); !strings.Contains(got, `"1m POST /users";r=`) || !strings.Contains(rec.Body.String(), `"allowed":true`) {
		t.Errorf("check: RateLimit %q, body %s", got, rec.Body)
	}
	c.do(call{method: "GET", path: "/quotas/bob/check?reserve=false", status: 200})
	c.do(call{method: "GET", path: "/quotas/alice/check?endpoint=users", status: 400, docRejects: true})
	// The check's example request, built from its parameters' examples, is
	// sent as is: the limit of the service's endpoint applies to it.
	rec = c.do(call{method: "GET", path: parameterExample(t, doc, "/quotas/{client}/check"), status: 200})
	if got := rec.Header().Get("RateLimit"); !strings.Contains(got, `"1m shop GET /orders/{id}";r=9;`) || !strings.Contains(rec.Body.String(), `"service":"shop"`) {
		t.Errorf("the check's example: RateLimit %q, body %s; want shop's endpoint limit applied", got, rec.Body)
	}
	c.do(call{method: "GET", path: "/quotas/alice/check?service=shop&all=true&reserve=false", status: 200})
	c.do(call{method: "GET", path: "/quotas/alice/check?service=no%20space", status: 400, docRejects: true})
	c.do(call{method: "DELETE", path: "/quotas/alice", status: 204})
	c.do(call{method: "DELETE", path: "/quotas/alice", status: 404})

	// Every operation the router mounts was exercised at least once.
	exercised := map[string]bool{}
	for s := range c.statuses {
		exercised[strings.Join(strings.Fields(s)[:2], " ")] = true
	}
	for op := range routerOperations(t, srv) {
		if !exercised[op] {
			t.Errorf("%s was not exercised against the document", op)
		}
	}
}

// TestOpenAPIQuotaAnswersConform: with quotas enforced, an allowed call's
// RateLimit headers and a refused call's 429 are as the document says, on
// every route the gate covers, and an exempt route is left alone.
func TestOpenAPIQuotaAnswersConform(t *testing.T) {
	policies := quotastest.NewStore(&quotas.Policy{Client: quotas.Default, Limits: []quotas.Limit{{Window: "1h", Limit: 1}}})
	cfg := enforce.DefaultConfig()
	cfg.Exempt = []string{"/healthz", "/openapi.json"}
	srv := openAPIServer(t, api.WithGate(enforce.New(policies, viewstest.NewWindowed(fakeUsage{}, nil), cfg).Gate))
	router, err := gorillamux.NewRouter(loadDocument(t, srv))
	if err != nil {
		t.Fatal(err)
	}
	c := &conformance{t: t, srv: srv, router: router, statuses: map[string]bool{}}
	if rec := c.do(call{method: "GET", path: "/usage/alice", status: 200}); !strings.HasPrefix(rec.Header().Get("RateLimit"), `"1h";r=0;t=`) {
		t.Errorf("allowed call: RateLimit %q", rec.Header().Get("RateLimit"))
	}
	for _, k := range []call{
		{method: "GET", path: "/usage/alice", status: 429},
		{method: "POST", path: "/users", body: `{"name":"Ann","email":"ann@example.com"}`, status: 429},
		{method: "GET", path: "/quotas", status: 429},
	} {
		if rec := c.do(k); rec.Header().Get("Retry-After") == "" || rec.Header().Get("RateLimit-Policy") != `"1h";q=1;w=3600` {
			t.Errorf("%s %s refused without its headers: %v", k.method, k.path, rec.Header())
		}
	}
	if rec := c.do(call{method: "GET", path: "/healthz", status: 200}); rec.Header().Get("RateLimit") != "" {
		t.Errorf("exempt /healthz carries RateLimit %q", rec.Header().Get("RateLimit"))
	}
}

// TestOpenAPIDocumentDescribesAuth keeps the optional security schemes in
// the document (auth is off by default), and each operation's security as
// its route declares it: open routes have security [], the others document
// 401 and 403 and name their scope.
func TestOpenAPIDocumentDescribesAuth(t *testing.T) {
	srv := openAPIServer(t)
	doc := loadDocument(t, srv)
	ss := doc.Components.SecuritySchemes
	if k := ss["apiKey"]; k == nil || k.Value.Type != "apiKey" || k.Value.In != "header" || k.Value.Name != "X-API-Key" {
		t.Errorf("apiKey scheme = %+v", k)
	}
	if b := ss["bearer"]; b == nil || b.Value.Type != "http" || b.Value.Scheme != "bearer" {
		t.Errorf("bearer scheme = %+v", b)
	}
	if len(doc.Security) == 0 || len(doc.Security[0]) != 0 {
		t.Errorf("global security %v must start with {} (optional)", doc.Security)
	}
	for op, rt := range routerOperations(t, srv) {
		o := doc.Paths.Find(rt.Path).GetOperation(rt.Method)
		if o == nil {
			continue // TestOpenAPIDocumentMatchesRouter reports it
		}
		if rt.Scope == auth.Public {
			if o.Security == nil || len(*o.Security) != 0 {
				t.Errorf("%s is open, so the document should give it security: []", op)
			}
			continue
		}
		for _, code := range []int{401, 403} {
			if o.Responses.Status(code) == nil {
				t.Errorf("%s does not document %d", op, code)
			}
		}
		if want := "Scope, when keys are on: `" + string(rt.Scope) + "`"; !strings.HasPrefix(o.Description, want) {
			t.Errorf("%s needs %s, but its description says %q", op, rt.Scope, o.Description)
		}
		if rt.Own && !strings.Contains(o.Description, "own client") {
			t.Errorf("%s is limited to the key's own client, but its description does not say so: %q", op, o.Description)
		}
	}
}

// TestOpenAPIAuthResponsesConform turns API keys on and checks, for every
// routed operation, that the responses agree with the route's scope and
// the document: open operations answer without a key, the others answer 401
// as documented, and a key without the scope gets a documented 403.
func TestOpenAPIAuthResponsesConform(t *testing.T) {
	keys, err := auth.Parse(strings.NewReader("reader:users:read:"+auth.Hash("reader-key")), "test")
	if err != nil {
		t.Fatal(err)
	}
	srv := openAPIServer(t, api.WithAPIKeys(keys))
	doc := loadDocument(t, srv)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	c := &conformance{t: t, srv: srv, router: router, statuses: map[string]bool{}}
	bodies := map[string]string{"POST": `{"name":"A","email":"a@example.com"}`, "PUT": `{"name":"A","email":"a@example.com"}`, "PATCH": `{}`}
	concrete := strings.NewReplacer("{client}", "alice", "{id}", users.NewID(), "{name}", "a-rule")
	// Queries the document requires, so the request itself conforms.
	requiredQuery := map[string]string{"/dashboard/endpoints/series": "?endpoint=GET%20%2F"}
	for _, rt := range routerOperations(t, srv) {
		want := http.StatusUnauthorized
		if rt.Scope == auth.Public {
			want = http.StatusOK // every open route is a plain GET
		}
		body := bodies[rt.Method]
		switch rt.Path {
		case otlpin.EventsPath:
			body = eventsBatch
		case "/quotas/{client}":
			body = `{"limits":[{"window":"1m","limit":1}]}`
		}
		if rt.Path == "/alerts/rules/{name}" && rt.Method == http.MethodPut {
			body = `{"kind":"client_usage","client":"alice","window":"1m","limit":10,"thresholds":[100]}`
		}
		c.do(call{method: rt.Method, path: concrete.Replace(rt.Path) + requiredQuery[rt.Path], body: body, status: want})
	}
	c.do(call{method: "POST", path: "/users", body: bodies["POST"], status: http.StatusForbidden,
		header: map[string]string{"X-API-Key": "reader-key"}})
	c.do(call{method: "GET", path: "/users", status: http.StatusOK,
		header: map[string]string{"Authorization": "Bearer reader-key"}})
}

// TestNewRejectsRouteWithoutScope: a route must say who may call it, or
// the API does not start, rather than leaving it open or admin-only.
func TestNewRejectsRouteWithoutScope(t *testing.T) {
	pub := api.NewPublisher(&fakeEmitter{}, 8)
	t.Cleanup(func() { _ = pub.Close(context.Background()) })
	cr, err := api.NewClientResolver(nil)
	if err != nil {
		t.Fatal(err)
	}
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for name, rt := range map[string]httpx.Route{
		"no scope":       {Method: http.MethodGet, Path: "/forgotten", Handler: ok},
		"unknown scope":  {Method: http.MethodGet, Path: "/forgotten", Scope: "usage:write", Handler: ok},
		"declared twice": {Method: http.MethodGet, Path: "/healthz", Scope: auth.Public, Handler: ok},
		"no handler":     {Method: http.MethodGet, Path: "/forgotten", Scope: auth.Admin},
	} {
		t.Run(name, func(t *testing.T) {
			srv, err := newAPI(fakeUsage{}, pub, cr, api.WithRoutes(rt))
			if err == nil || srv != nil {
				t.Fatalf("api.New = %v, %v; want an error", srv, err)
			}
			if !strings.Contains(err.Error(), rt.Path) {
				t.Errorf("error %q does not name the route %s", err, rt.Path)
			}
		})
	}
}

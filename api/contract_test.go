package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/internal/auth"
	"github.com/inarious/inarious/internal/dashboard"
	"github.com/inarious/inarious/internal/otlpin"
	"github.com/inarious/inarious/internal/users"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/views/viewstest"
)

// The property-based contract test: requests generated from the document
// itself, inside and outside its schemas, sent through the real server,
// and the answers held to the document. It is what an outside tester such
// as schemathesis does, kept deterministic (a fixed seed) and fast.

// contractSeed and contractCases are fixed so every run sends the same
// requests; INARIOUS_CONTRACT_SEED and INARIOUS_CONTRACT_CASES explore more.
var contractSeed, contractCases = envUint("INARIOUS_CONTRACT_SEED", 20251206), int(envUint("INARIOUS_CONTRACT_CASES", 3000))

func envUint(name string, def uint64) uint64 {
	if n, err := strconv.ParseUint(os.Getenv(name), 10, 64); err == nil {
		return n
	}
	return def
}

// semanticRules are the parameters whose rule the document can only state
// in words (a window within retention, a cursor this server made, an
// address net/mail parses): a value that matches the schema may still get
// 400 there, and the description must say so.
var semanticRules = map[string]bool{"window": true, "step": true, "from": true, "to": true, "cursor": true, "email": true, "client": true, "endpoint": true}

// contractRequest is one generated request, kept in parts so a failing
// one can be shrunk.
type contractRequest struct {
	method, path string // path: concrete and escaped
	query        [][2]string
	header       [][2]string
	body         *string
	// semantic: some value was drawn from outside the known-good pools for
	// a parameter of semanticRules, so a 400 is allowed even when the
	// document accepts the request.
	semantic bool
	// undeclared: the method is not one the document lists for the path.
	undeclared bool
}

func (c contractRequest) String() string {
	var b strings.Builder
	b.WriteString(c.method + " " + c.target())
	for _, h := range c.header {
		fmt.Fprintf(&b, "\n%s: %q", h[0], h[1])
	}
	if c.body != nil {
		fmt.Fprintf(&b, "\n\n%s", *c.body)
	}
	return b.String()
}

func (c contractRequest) target() string {
	if len(c.query) == 0 {
		return c.path
	}
	q := make([]string, len(c.query))
	for i, kv := range c.query {
		q[i] = url.QueryEscape(kv[0]) + "=" + url.QueryEscape(kv[1])
	}
	return c.path + "?" + strings.Join(q, "&")
}

func (c contractRequest) request() *http.Request {
	var r *http.Request
	if c.body != nil {
		r = httptest.NewRequest(c.method, c.target(), strings.NewReader(*c.body))
	} else {
		r = httptest.NewRequest(c.method, c.target(), nil)
	}
	for _, h := range c.header {
		r.Header.Set(h[0], h[1])
	}
	return r
}

// contractOp is one operation of the document.
type contractOp struct {
	path, method string
	op           *openapi3.Operation
	params       openapi3.Parameters
}

// contract holds the document, the server and what the run learned: users
// created, cursors and revisions the server handed out.
type contract struct {
	t      *testing.T
	srv    http.Handler
	doc    *openapi3.T
	router routers.Router
	rng    *rand.Rand
	ops    []contractOp
	keys   bool // API keys are on: 401 and 403 are expected

	ids, revs []string
	// cursors are the next_cursors handed out, by cursorKey.
	cursors map[string][]string
	emails  int
	// seen counts outcomes, so a run that exercised nothing fails.
	seen map[string]int
	// otlpJSON and otlpProto are a real OTLP batch in both encodings.
	otlpJSON, otlpProto string
}

func newContract(t *testing.T, srv *api.Server, keys bool) *contract {
	t.Helper()
	doc := loadDocument(t, srv)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	c := &contract{t: t, srv: srv, doc: doc, router: router, rng: rand.New(rand.NewPCG(contractSeed, 1)), keys: keys, seen: map[string]int{}, cursors: map[string][]string{}}
	c.otlpJSON, c.otlpProto, _ = otlpBodies(t)
	paths := doc.Paths.InMatchingOrder()
	sort.Strings(paths) // map order would make the run differ from one time to the next
	for _, p := range paths {
		item := doc.Paths.Value(p)
		methods := make([]string, 0, 4)
		for m := range item.Operations() {
			methods = append(methods, m)
		}
		sort.Strings(methods)
		for _, m := range methods {
			op := item.GetOperation(m)
			params := append(slices.Clone(item.Parameters), op.Parameters...)
			c.ops = append(c.ops, contractOp{path: p, method: m, op: op, params: params})
		}
	}
	return c
}

func (c *contract) pick(vals ...string) string { return vals[c.rng.IntN(len(vals))] }

// chars are drawn from to make strings: letters, digits, punctuation,
// whitespace of every kind, controls, and characters beyond ASCII.
var chars = []rune("abcXYZ019 -_.~/:@%+?#&=\"',{}\\\t\n\x00\x1f\x7f\u0085\u00a0\u00e9\u2028\u3000\u4e16\U0001F600")

func (c *contract) randomString(n int) string {
	var b strings.Builder
	for range n {
		b.WriteRune(chars[c.rng.IntN(len(chars))])
	}
	return b.String()
}

// headerString is a random string a client can send as a header value.
func (c *contract) headerString(n int) string {
	var b strings.Builder
	for range n {
		b.WriteByte(byte(0x20 + c.rng.IntN(0x5f)))
	}
	return b.String()
}

func (c *contract) duration() string {
	return strconv.Itoa(c.rng.IntN(200)) + c.pick("s", "m", "h", "d", "ms", "1h30m", "xx1qfr", "")
}

// value draws a value for a parameter or member: from a pool the server
// accepts, or at random inside or outside the schema. It reports whether
// the value came from outside the known-good pool of a semantic rule.
func (c *contract) value(name string, s *openapi3.Schema) (string, bool) {
	good := c.rng.IntN(3) > 0
	if good {
		switch name {
		case "window":
			return c.pick("5m", "10m", "1h", "2h", "1d"), false
		case "step":
			return c.pick("1m", "1h", "1d"), false
		case "from":
			return c.pick("-1h", "-30m", "now", time.Now().Add(-10*time.Minute).UTC().Format(time.RFC3339)), false
		case "to":
			return "now", false
		case "cursor":
			return poolCursor, false // generate picks one of the operation's
		case "client":
			return c.pick("alice", "bob", "nobody", "10.0.0.1"), false
		case "endpoint":
			return c.pick("GET /users/{id}", "POST /users", "GET /nowhere"), false
		case "id":
			if len(c.ids) > 0 && c.rng.IntN(3) > 0 {
				return c.ids[c.rng.IntN(len(c.ids))], false
			}
			return users.NewID(), false
		case "email":
			c.emails++
			return "u" + strconv.Itoa(c.emails) + "@example.com", false
		case "name":
			return c.pick("Ann", "Bob Smith", "Zoë", "李"), false
		}
	}
	if s != nil && len(s.Enum) > 0 && c.rng.IntN(2) == 0 {
		return fmt.Sprint(s.Enum[c.rng.IntN(len(s.Enum))]), false
	}
	// Any string names a client or endpoint; only its length in bytes is a
	// rule in words, which generate checks.
	semantic := semanticRules[name] && name != "client" && name != "endpoint"
	switch {
	case s != nil && s.Type.Is("integer"):
		lo, hi := -5.0, 2000.0
		if s.Min != nil {
			lo = *s.Min - 1
		}
		if s.Max != nil {
			hi = *s.Max + 1
		}
		switch c.rng.IntN(6) {
		case 0:
			return c.pick("x", "1.5", "", " 1", "1e3", "0x10"), false
		case 1:
			return strconv.Itoa(int(lo)), false
		case 2:
			return strconv.Itoa(int(hi)), false
		}
		return strconv.Itoa(int(lo) + c.rng.IntN(int(hi-lo)+1)), false
	case name == "window" || name == "step":
		return c.pick("", "-", "+", " ") + c.duration(), semantic
	case name == "from" || name == "to":
		switch c.rng.IntN(3) {
		case 0:
			return "-" + c.duration(), semantic
		case 1:
			return c.pick("2025-06-01T12:00:00Z", "2025-13-01T00:00:00Z", "2025-06-01 12:00:00", "2099-01-01T00:00:00+02:00", "now "), semantic
		}
	case name == "If-Match":
		return c.pick("*", `"`+c.pick(c.revs...)+`"`, `W/"x"`, `"a", "b"`, "unquoted", `""`, ` * `), false
	case name == "email":
		return c.randomString(c.rng.IntN(6)) + c.pick("@", "") + c.pick("example.com", "x", ""), semantic
	}
	n := c.rng.IntN(12)
	if s != nil && s.MaxLength != nil && c.rng.IntN(8) == 0 {
		n = int(*s.MaxLength) + 1 + c.rng.IntN(3)
	}
	v := c.randomString(n)
	if name == "cursor" && c.rng.IntN(2) == 0 {
		v = strings.Map(func(r rune) rune {
			if r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				return r
			}
			return '_'
		}, v)
	}
	return v, semantic
}

// generate draws one request: mostly a documented operation, sometimes a
// method the path does not have.
func (c *contract) generate() contractRequest {
	o := c.ops[c.rng.IntN(len(c.ops))]
	req := contractRequest{method: o.method}
	if c.rng.IntN(10) == 0 {
		item := c.doc.Paths.Value(o.path)
		for {
			m := c.pick("TRACE", "OPTIONS", "PUT", "POST", "PATCH", "DELETE")
			if item.GetOperation(m) == nil {
				req.method, req.undeclared = m, true
				break
			}
		}
	}
	path := o.path
	for _, p := range o.params {
		pv := p.Value
		v, sem := c.value(pv.Name, schemaOf(pv))
		switch pv.In {
		case openapi3.ParameterInPath:
			if strings.Trim(v, ".") == "" || (pv.Name != "endpoint" && strings.ContainsAny(v, "/")) {
				v = "x" + strings.ReplaceAll(v, "/", "x") // routing, not the operation, would answer
			}
			sem = sem || (pv.Schema != nil && pv.Schema.Value.MaxLength != nil && uint64(len(v)) > *pv.Schema.Value.MaxLength)
			path = strings.Replace(path, "{"+pv.Name+"}", url.PathEscape(v), 1)
		case openapi3.ParameterInQuery:
			if !pv.Required && c.rng.IntN(2) == 0 {
				continue
			}
			sem = sem || (pv.Schema != nil && pv.Schema.Value.MaxLength != nil && uint64(len(v)) > *pv.Schema.Value.MaxLength)
			req.query = append(req.query, [2]string{pv.Name, v})
		case openapi3.ParameterInHeader:
			if c.rng.IntN(2) == 0 {
				continue
			}
			if pv.Name != "If-Match" {
				v = c.headerString(c.rng.IntN(80))
			}
			req.header = append(req.header, [2]string{pv.Name, v})
		}
		req.semantic = req.semantic || sem
	}
	req.path = path
	if c.rng.IntN(15) == 0 {
		// A parameter the operation does not list: ignored, unless a
		// description says it gets 400 (offset, the old pagination).
		name := c.pick("offset", "zz")
		req.query = append(req.query, [2]string{name, c.pick("10", c.randomString(3))})
		req.semantic = req.semantic || (name == "offset" && mentions(o, "`offset`"))
	}
	for i, kv := range req.query {
		if kv[1] == poolCursor {
			req.query[i][1] = ""
			if pool := c.cursors[req.cursorKey()]; len(pool) > 0 {
				req.query[i][1] = pool[c.rng.IntN(len(pool))]
			}
		}
	}
	if c.keys && c.rng.IntN(2) == 0 {
		req.header = append(req.header, [2]string{"X-API-Key", "reader-key"}) // users:read only
	}
	if rb := o.op.RequestBody; rb != nil && !req.undeclared {
		types := make([]string, 0, 2)
		for ct := range rb.Value.Content {
			types = append(types, ct)
		}
		sort.Strings(types)
		ct := c.pick(types...)
		if c.rng.IntN(20) == 0 {
			ct = c.pick("text/plain", "application/json; charset=latin1")
		}
		req.header = append(req.header, [2]string{"Content-Type", ct})
		var body string
		var sem bool
		switch o.path {
		case otlpin.Path:
			body, sem = c.otlpBody(ct)
		case otlpin.EventsPath:
			body, sem = c.eventsBody()
		default:
			body, sem = c.body(rb.Value.Content[strings.Split(ct, ";")[0]])
		}
		req.body, req.semantic = &body, req.semantic || sem
	}
	return req
}

// mentions reports whether o's description or one of its parameters' says s.
func mentions(o contractOp, s string) bool {
	if strings.Contains(o.op.Description, s) {
		return true
	}
	return slices.ContainsFunc(o.params, func(p *openapi3.ParameterRef) bool { return strings.Contains(p.Value.Description, s) })
}

// poolCursor stands for a cursor the server made for the same listing.
const poolCursor = "\x00pool"

// cursorKey names a listing: a cursor is only valid for the path and order
// it was made for.
func (c contractRequest) cursorKey() string {
	order := ""
	for _, kv := range c.query {
		if kv[0] == "order" {
			order = kv[1]
		}
	}
	if order == "calls" {
		order = "" // the default
	}
	return c.path + " " + order
}

func schemaOf(p *openapi3.Parameter) *openapi3.Schema {
	if p.Schema == nil {
		return nil
	}
	return p.Schema.Value
}

// body draws a JSON body for mt: its object's members inside or outside
// their schemas, with members left out or added, or not JSON at all.
func (c *contract) body(mt *openapi3.MediaType) (string, bool) {
	switch c.rng.IntN(20) {
	case 0:
		return c.pick(`{"name":"A"`, `[]`, `null`, `"x"`, ``, `{} {}`), false
	case 1:
		// The document can only say in words that this gets 400.
		return `{"name":"\ud800","email":"a@b.example"}`, true
	case 2:
		return `{"name":"` + strings.Repeat("n", 70<<10) + `","email":"big@example.com"}`, false
	}
	obj := map[string]any{}
	semantic := false
	if mt != nil && mt.Schema != nil {
		props := make([]string, 0, 2)
		for name := range mt.Schema.Value.Properties {
			props = append(props, name)
		}
		sort.Strings(props)
		for _, name := range props {
			if c.rng.IntN(6) == 0 {
				continue
			}
			v, sem := c.value(name, mt.Schema.Value.Properties[name].Value)
			semantic = semantic || sem
			switch c.rng.IntN(25) {
			case 0:
				obj[name] = nil
			case 1:
				obj[name] = 42
			default:
				obj[name] = v
			}
		}
	}
	if c.rng.IntN(25) == 0 {
		obj["admin"] = true
	}
	b, err := json.Marshal(obj)
	if err != nil {
		c.t.Fatal(err)
	}
	return string(b), semantic
}

// otlpBody draws an OTLP request body of media type ct: a real batch, or
// one the document rejects, or one only a decoder can refuse (semantic).
// A body drawn from the schema would be no batch at all.
func (c *contract) otlpBody(ct string) (string, bool) {
	if ct == otlpin.ContentTypeProtobuf {
		switch c.rng.IntN(4) {
		case 0:
			return "garbage", true
		case 1:
			return strings.Repeat("x", 70<<10), false
		}
		return c.otlpProto, false
	}
	switch c.rng.IntN(5) {
	case 0:
		return c.pick(`{"resourceSpans":42}`, `[]`, `null`, `{} {}`, `{"resourceSpans":[`, ``), false
	case 1:
		// A trace id that is not hex.
		return `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","kind":2}]}]}]}`, true
	case 2:
		return `{}`, false
	}
	return c.otlpJSON, false
}

// eventsBody draws a POST /events body: a batch of events, some items
// rejected (by the answer, not 400), or one the document rejects.
func (c *contract) eventsBody() (string, bool) {
	switch c.rng.IntN(6) {
	case 0:
		return c.pick(`{"client":"alice"}`, `[]`, `null`, `[{}] []`, `[{"client":`, ``, `[{},42]`, `["x"]`), false
	case 1:
		return "[" + strings.Repeat(`{"client":"`+strings.Repeat("c", 80)+`"},`, 900) + `{}]`, false
	}
	items := make([]string, 1+c.rng.IntN(4))
	for i := range items {
		items[i] = c.pick(
			`{"id":"e`+strconv.Itoa(i)+`","client":"alice","httpMethod":"GET","route":"/orders/{id}","httpStatus":200,"durationUs":900,"requestTime":"2026-12-06T12:00:00Z","service":"shop"}`,
			`{"client_host":"192.0.2.7","http_method":"POST","endpoint":"/carts/9/items","http_status":201}`,
			`{"client":"alice","route":"/a"}`,                                   // no method: rejected
			`{"client":"alice","httpMethod":"GET","route":"/a","colour":"red"}`, // unknown field: rejected
			`{"client":"\ud800","httpMethod":"GET","route":"/a"}`)
	}
	return "[" + strings.Join(items, ",") + "]", false
}

// check sends req and returns what breaks the contract, "" if nothing.
func (c *contract) check(req contractRequest) string {
	rec := httptest.NewRecorder()
	c.srv.ServeHTTP(rec, req.request())
	if rec.Code >= 500 {
		return fmt.Sprintf("answered %d: %s", rec.Code, rec.Body)
	}
	if req.undeclared {
		c.seen["405"]++
		return c.checkUndeclared(req, rec)
	}
	c.learn(req, rec)

	r := req.request()
	route, params, err := c.router.FindRoute(r)
	if err != nil {
		return fmt.Sprintf("the document has no operation for it: %v", err)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: r, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}
	docErr := openapi3filter.ValidateRequest(context.Background(), in)
	if docErr == nil && req.body != nil && strings.Contains(r.Header.Get("Content-Type"), "json") && !json.Valid([]byte(*req.body)) {
		// kin-openapi decodes the first JSON value and ignores the rest,
		// but a JSON media type is one JSON text.
		docErr = fmt.Errorf("the body is not one JSON text")
	}
	if route.Path == otlpin.Path && rec.Code == http.StatusOK {
		c.seen["OTLP batch taken"]++
	}
	if route.Path == otlpin.EventsPath && rec.Code == http.StatusOK {
		c.seen["event batch taken"]++
	}
	auth := rec.Code == http.StatusUnauthorized || rec.Code == http.StatusForbidden
	switch {
	case docErr != nil:
		c.seen["document rejects"]++
	case rec.Code < 300:
		c.seen["document accepts, 2xx"]++
	default:
		c.seen["document accepts, "+strconv.Itoa(rec.Code)]++
	}
	switch {
	case auth && !c.keys:
		return fmt.Sprintf("answered %d with API keys off", rec.Code)
	case docErr == nil && rec.Code == http.StatusBadRequest && !req.semantic:
		return fmt.Sprintf("the document accepts it, but the server answered 400: %s", rec.Body)
	case docErr != nil && rec.Code < 400:
		return fmt.Sprintf("the document rejects it (%v), but the server answered %d", docErr, rec.Code)
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 rec.Code,
		Header:                 rec.Header(),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	out.SetBodyBytes(rec.Body.Bytes())
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		return fmt.Sprintf("the %d answer does not conform: %v\nbody: %s", rec.Code, err, rec.Body)
	}
	return ""
}

// checkUndeclared: a method the path does not have gets a 405 problem
// whose Allow lists exactly the path's methods (and HEAD with GET).
func (c *contract) checkUndeclared(req contractRequest, rec *httptest.ResponseRecorder) string {
	if rec.Code != http.StatusMethodNotAllowed {
		return fmt.Sprintf("answered %d, want 405: %s", rec.Code, rec.Body)
	}
	r := req.request()
	var route *routers.Route
	var err error
	for _, m := range []string{http.MethodGet, http.MethodPost} { // every documented path has one
		r.Method = m
		if route, _, err = c.router.FindRoute(r); err == nil {
			break
		}
	}
	if err != nil {
		return fmt.Sprintf("no documented path: %v", err)
	}
	want := []string{}
	for m := range route.PathItem.Operations() {
		want = append(want, m)
		if m == http.MethodGet {
			want = append(want, http.MethodHead)
		}
	}
	got := strings.Split(rec.Header().Get("Allow"), ", ")
	sort.Strings(want)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		return fmt.Sprintf("Allow = %q, want %q", rec.Header().Get("Allow"), strings.Join(want, ", "))
	}
	resp := c.doc.Components.Responses["MethodNotAllowed"].Value
	var body any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		return fmt.Sprintf("405 body is not JSON: %v", err)
	}
	if err := resp.Content.Get(rec.Header().Get("Content-Type")).Schema.Value.VisitJSON(body); err != nil {
		return fmt.Sprintf("405 body does not conform: %v", err)
	}
	if err := resp.Headers["Allow"].Value.Schema.Value.VisitJSON(rec.Header().Get("Allow")); err != nil {
		return fmt.Sprintf("Allow does not conform: %v", err)
	}
	return ""
}

// learn keeps the ids, revisions and cursors the server hands out, so
// later requests can use them.
func (c *contract) learn(req contractRequest, rec *httptest.ResponseRecorder) {
	if rec.Code >= 300 {
		return
	}
	var v struct {
		ID         string `json:"id"`
		Rev        string `json:"rev"`
		NextCursor string `json:"next_cursor"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &v)
	if v.ID != "" && !slices.Contains(c.ids, v.ID) {
		c.ids = append(c.ids, v.ID)
	}
	if v.Rev != "" {
		c.revs = append(c.revs, v.Rev)
	}
	if k := req.cursorKey(); v.NextCursor != "" && !slices.Contains(c.cursors[k], v.NextCursor) {
		c.cursors[k] = append(c.cursors[k], v.NextCursor)
	}
}

// shrink drops query parameters, headers and the body while the request
// still breaks the contract, so the failure names what matters.
func (c *contract) shrink(req contractRequest, why string) (contractRequest, string) {
	for i := 0; i < len(req.query); i++ {
		r := req
		r.query = slices.Delete(slices.Clone(req.query), i, i+1)
		if w := c.check(r); w != "" {
			req, why, i = r, w, i-1
		}
	}
	for i := 0; i < len(req.header); i++ {
		r := req
		r.header = slices.Delete(slices.Clone(req.header), i, i+1)
		if w := c.check(r); w != "" {
			req, why, i = r, w, i-1
		}
	}
	return req, why
}

func (c *contract) run(cases int) {
	c.t.Helper()
	c.revs = []string{"01J0000000000000000000000"}
	failures := 0
	for i := range cases {
		req := c.generate()
		why := c.check(req)
		if why == "" {
			continue
		}
		req, why = c.shrink(req, why)
		c.t.Errorf("case %d (seed %d), minimal request:\n%s\n→ %s", i, contractSeed, req, why)
		if failures++; failures == 10 {
			c.t.Fatal("10 failures; stopping")
		}
	}
	c.t.Logf("%d cases: %v", cases, c.seen)
	for _, k := range []string{"405", "document rejects", "document accepts, 2xx"} {
		if c.seen[k] < cases/20 {
			c.t.Errorf("only %d cases were %q; the generator has drifted", c.seen[k], k)
		}
	}
	if !c.keys && c.seen["OTLP batch taken"] == 0 {
		c.t.Error("no OTLP batch was taken; the generator has drifted")
	}
	if !c.keys && c.seen["event batch taken"] == 0 {
		c.t.Error("no event batch was taken; the generator has drifted")
	}
}

func TestOpenAPIContractProperties(t *testing.T) {
	c := newContract(t, openAPIServer(t), false)
	checkSemanticRulesDocumented(t, c)
	c.run(contractCases)
}

// TestOpenAPIContractPropertiesWithKeys: with keys on, a reader key's
// requests get only declared answers too (401 and 403 among them).
func TestOpenAPIContractPropertiesWithKeys(t *testing.T) {
	keys, err := auth.Parse(strings.NewReader("reader:users:read:"+auth.Hash("reader-key")), "test")
	if err != nil {
		t.Fatal(err)
	}
	c := newContract(t, openAPIServer(t, api.WithAPIKeys(keys)), true)
	c.run(contractCases / 6)
}

// checkSemanticRulesDocumented: every parameter whose rule is in words
// says in its description that breaking it gets 400.
func checkSemanticRulesDocumented(t *testing.T, c *contract) {
	t.Helper()
	for _, o := range c.ops {
		for _, p := range o.params {
			if semanticRules[p.Value.Name] && !strings.Contains(p.Value.Description, "400") {
				t.Errorf("%s %s: parameter %s has a rule the schema cannot state, and its description does not say it gets 400", o.method, o.path, p.Value.Name)
			}
		}
	}
	for _, o := range c.ops {
		if rb := o.op.RequestBody; rb != nil && !strings.Contains(rb.Value.Description, "surrogate") {
			t.Errorf("%s %s: the body's description does not say that a lone surrogate escape gets 400", o.method, o.path)
		}
	}
	if d := c.doc.Components.Schemas["Email"].Value.Description; !strings.Contains(d, "400") {
		t.Errorf("Email: %q does not say what gets 400", d)
	}
	// The duration and time syntax the document declares is the one parsed.
	for _, o := range c.ops {
		for _, p := range o.params {
			want := map[string]string{"window": windows.DurationPattern, "step": windows.DurationPattern, "from": windows.TimePattern, "to": windows.TimePattern}[p.Value.Name]
			if want != "" && p.Value.Schema.Value.Pattern != want {
				t.Errorf("%s %s: %s pattern %q, want windows' %q", o.method, o.path, p.Value.Name, p.Value.Schema.Value.Pattern, want)
			}
		}
	}
}

// TestOpenAPIDashboardEventsConform: the data of a /dashboard/events event,
// with the endpoint panels, is the DashboardSnapshot the document names.
func TestOpenAPIDashboardEventsConform(t *testing.T) {
	doc := loadDocument(t, openAPIServer(t))
	mt := doc.Paths.Value("/dashboard/events").Get.Responses.Status(200).Value.Content.Get("text/event-stream")
	ref, _ := mt.Extensions["x-event-data"].(string)
	name, ok := strings.CutPrefix(ref, "#/components/schemas/")
	if !ok || doc.Components.Schemas[name] == nil {
		t.Fatalf("x-event-data = %v, want a schema in components", mt.Extensions["x-event-data"])
	}
	schema := doc.Components.Schemas[name].Value

	hub := dashboard.NewHub(dashboard.WithEndpoints(fakeEndpoints()), dashboard.WithAlerts(fakeDashboardAlerts))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); hub.Run(ctx, viewstest.NewWindowed(openAPIUsage(), nil)) }()
	t.Cleanup(func() { cancel(); <-done; hub.Close() })
	// Read as a browser would: the stream's lines, up to the first event.
	ts := httptest.NewServer(http.HandlerFunc(hub.ServeEvents))
	defer ts.Close()
	resp, err := ts.Client().Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	lines := bufio.NewScanner(resp.Body)
	lines.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var msg []byte
	for msg == nil && lines.Scan() {
		line := lines.Text()
		switch {
		case line == "" || line == "retry: 2000" || strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "data: "):
			msg = []byte(strings.TrimPrefix(line, "data: "))
		default:
			t.Fatalf("the document names no such field: %q", line)
		}
	}
	if msg == nil {
		t.Fatalf("the stream ended without an event: %v", lines.Err())
	}
	var v any
	if err := json.Unmarshal(msg, &v); err != nil {
		t.Fatalf("event data is not JSON: %v: %s", err, msg)
	}
	if err := schema.VisitJSON(v); err != nil {
		t.Errorf("event data does not conform to %s: %v\n%s", name, err, msg)
	}
	if !strings.Contains(string(msg), `"endpoints":{`) || !strings.Contains(string(msg), `"top":[{`) || !strings.Contains(string(msg), `"alerts":[{`) {
		t.Errorf("event lacks the panels this test means to check: %s", msg)
	}
}

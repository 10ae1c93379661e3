// Package quotahttp serves the quota policies (internal/quotas) over HTTP:
// PUT, GET and DELETE /quotas/{client}, the list GET /quotas, and
// GET /quotas/{client}/check, which answers another service whether a
// client's call is within its quota. See the README, "Quotas".
package quotahttp

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/inarious/inarious/internal/auth"
	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/jsonbody"
	"github.com/inarious/inarious/internal/problem"
	"github.com/inarious/inarious/internal/quotas"
	"github.com/inarious/inarious/internal/quotas/enforce"
	"github.com/inarious/inarious/internal/windows"
)

// Store holds the policies (quotas.Table).
type Store interface {
	Get(client string) (*quotas.Policy, error)
	List() ([]*quotas.Policy, error)
	Put(ctx context.Context, p *quotas.Policy) error
	Delete(ctx context.Context, client string) error
}

// Checker decides a call (enforce.Limiter).
type Checker interface {
	Decide(client, service, endpoint string, reserve bool) enforce.Decision
	Look(client, service string) enforce.Decision
}

type handler struct {
	store   Store
	checker Checker
	windows windows.Config
	maxBody int64
	log     *slog.Logger
}

// Option configures Routes.
type Option func(*handler)

// WithLogger logs to log (default slog.Default()).
func WithLogger(log *slog.Logger) Option { return func(h *handler) { h.log = log } }

// WithMaxBodyBytes bounds a PUT's body (default 64 KiB).
func WithMaxBodyBytes(n int64) Option { return func(h *handler) { h.maxBody = n } }

// Routes are the quota routes over store, deciding checks with checker; a
// limit's window must be a step of win.
func Routes(store Store, checker Checker, win windows.Config, opts ...Option) []httpx.Route {
	h := &handler{store: store, checker: checker, windows: win, maxBody: 64 << 10, log: slog.Default()}
	for _, o := range opts {
		o(h)
	}
	return []httpx.Route{
		{Method: http.MethodGet, Path: "/quotas", Scope: auth.Admin, Handler: http.HandlerFunc(h.list)},
		{Method: http.MethodGet, Path: "/quotas/{client}", Scope: auth.Admin, Handler: http.HandlerFunc(h.get)},
		{Method: http.MethodPut, Path: "/quotas/{client}", Scope: auth.Admin, Handler: http.HandlerFunc(h.put)},
		{Method: http.MethodDelete, Path: "/quotas/{client}", Scope: auth.Admin, Handler: http.HandlerFunc(h.delete)},
		{Method: http.MethodGet, Path: "/quotas/{client}/check", Scope: auth.QuotasCheck, Handler: http.HandlerFunc(h.check)},
	}
}

// PolicyList is the body of GET /quotas.
type PolicyList struct {
	Quotas []*quotas.Policy `json:"quotas"`
}

func (h *handler) list(w http.ResponseWriter, r *http.Request) {
	ps, err := h.store.List()
	if err != nil {
		h.unavailable(w, r, "read", err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, PolicyList{Quotas: append([]*quotas.Policy{}, ps...)})
}

// client is the {client} of the route, or a 400 written.
func client(w http.ResponseWriter, r *http.Request) (string, bool) {
	c := mux.Vars(r)["client"]
	if err := quotas.CheckClient(c); err != nil {
		problem.Write(w, r, http.StatusBadRequest, err.Error())
		return "", false
	}
	return c, true
}

func (h *handler) get(w http.ResponseWriter, r *http.Request) {
	c, ok := client(w, r)
	if !ok {
		return
	}
	p, err := h.store.Get(c)
	switch {
	case err != nil:
		h.unavailable(w, r, "read", err)
	case p == nil:
		problem.Write(w, r, http.StatusNotFound, "no quota policy for client "+strconv.Quote(c))
	default:
		httpx.WriteJSON(w, http.StatusOK, p)
	}
}

// policyBody is the body of PUT /quotas/{client}.
type policyBody struct {
	Limits []limitBody `json:"limits"`
}

// limitBody takes the limit as it was sent, so a negative or fractional
// one is named as such rather than as a field of the wrong type.
type limitBody struct {
	Window   string          `json:"window"`
	Limit    json.RawMessage `json:"limit"`
	Endpoint string          `json:"endpoint"`
	Service  string          `json:"service"`
}

var wholeNumber = regexp.MustCompile(`^-?[0-9]+$`)

// parseLimit reads a limit's count, or says what is wrong with it.
func parseLimit(raw json.RawMessage) (uint64, string) {
	s := string(raw)
	switch {
	case len(raw) == 0 || s == "null":
		return 0, "limit is required"
	case !wholeNumber.MatchString(s):
		return 0, "limit must be a whole number of calls"
	case strings.HasPrefix(s, "-"):
		return 0, "limit must not be negative"
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > quotas.MaxLimit {
		return 0, "limit must be at most " + strconv.FormatUint(quotas.MaxLimit, 10)
	}
	return n, ""
}

func (h *handler) put(w http.ResponseWriter, r *http.Request) {
	c, ok := client(w, r)
	if !ok {
		return
	}
	var body policyBody
	if !jsonbody.Read(w, r, h.maxBody, &body) {
		return
	}
	p := &quotas.Policy{Client: c, Limits: make([]quotas.Limit, len(body.Limits))}
	bad := map[string]string{}
	for i, l := range body.Limits {
		n, msg := parseLimit(l.Limit)
		if msg != "" {
			bad["limits["+strconv.Itoa(i)+"].limit"] = msg
		}
		p.Limits[i] = quotas.Limit{Window: l.Window, Limit: n, Endpoint: l.Endpoint, Service: l.Service}
	}
	maps.Copy(bad, p.Validate(h.windows))
	if len(bad) > 0 {
		invalid(w, r, bad)
		return
	}
	old, err := h.store.Get(c)
	if err != nil {
		h.unavailable(w, r, "read", err)
		return
	}
	if err := h.store.Put(r.Context(), p); err != nil {
		h.unavailable(w, r, "written", err)
		return
	}
	status := http.StatusOK
	if old == nil {
		status = http.StatusCreated
	}
	httpx.WriteJSON(w, status, p)
}

// invalid answers 400 naming every bad field.
func invalid(w http.ResponseWriter, r *http.Request, bad map[string]string) {
	fields := slices.Sorted(maps.Keys(bad))
	msgs := make([]string, len(fields))
	for i, f := range fields {
		msgs[i] = f + ": " + bad[f]
	}
	problem.WriteDetails(w, r, problem.Details{Status: http.StatusBadRequest,
		Detail: "the quota policy is not valid: " + strings.Join(msgs, "; "), Errors: bad})
}

func (h *handler) delete(w http.ResponseWriter, r *http.Request) {
	c, ok := client(w, r)
	if !ok {
		return
	}
	old, err := h.store.Get(c)
	switch {
	case err != nil:
		h.unavailable(w, r, "read", err)
		return
	case old == nil:
		problem.Write(w, r, http.StatusNotFound, "no quota policy for client "+strconv.Quote(c))
		return
	}
	if err := h.store.Delete(r.Context(), c); err != nil {
		h.unavailable(w, r, "written", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Check is the body of GET /quotas/{client}/check.
type Check struct {
	Client string `json:"client"`
	// Service is the service asked about, if one was.
	Service string `json:"service,omitempty"`
	Allowed bool   `json:"allowed"`
	// Policy is the policy that applied: the client's, "*" (the default),
	// or "" when none did.
	Policy string `json:"policy"`
	// Limits are those that applied to the call or, with all=true, every
	// limit of the policy that applies to a call of the service.
	Limits []CheckLimit `json:"limits"`
}

// CheckLimit is one limit of a Check.
type CheckLimit struct {
	quotas.Limit
	Remaining    uint64    `json:"remaining"`
	Reset        time.Time `json:"reset"`
	ResetSeconds int64     `json:"reset_seconds"`
}

func (h *handler) check(w http.ResponseWriter, r *http.Request) {
	c, ok := client(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	endpoint := q.Get("endpoint")
	if q.Has("endpoint") && !quotas.ValidEndpoint(endpoint) {
		problem.Write(w, r, http.StatusBadRequest, `endpoint must be a method, a space and a route, e.g. "GET /users/{id}"`)
		return
	}
	service := q.Get("service")
	if q.Has("service") && !quotas.ValidService(service) {
		problem.Write(w, r, http.StatusBadRequest, quotas.ServiceRule)
		return
	}
	reserve, ok := boolParam(w, r, "reserve", true)
	if !ok {
		return
	}
	all, ok := boolParam(w, r, "all", false)
	if !ok {
		return
	}
	d := h.checker.Decide(c, service, endpoint, reserve)
	if d.Unavailable {
		h.unavailable(w, r, "read", errors.New("the client's quota could not be read"))
		return
	}
	enforce.WriteHeaders(w.Header(), d)
	listed, policy := d.Limits, d.Policy
	if all { // the policy too: the call may have no limit where others of the service do
		look := h.checker.Look(c, service)
		listed, policy = look.Limits, look.Policy
	}
	out := Check{Client: c, Service: service, Allowed: d.Allowed, Policy: policy, Limits: make([]CheckLimit, len(listed))}
	for i, ls := range listed {
		out.Limits[i] = CheckLimit{Limit: ls.Limit, Remaining: ls.Remaining, Reset: ls.Reset.UTC(), ResetSeconds: ls.ResetSeconds}
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// boolParam is the query parameter name as true or false (def when
// absent), or a 400 written.
func boolParam(w http.ResponseWriter, r *http.Request, name string, def bool) (bool, bool) {
	v, ok := r.URL.Query()[name]
	if !ok {
		return def, true
	}
	b, err := strconv.ParseBool(v[0])
	if err != nil {
		problem.Write(w, r, http.StatusBadRequest, name+" must be true or false")
		return false, false
	}
	return b, true
}

// unavailable answers a failed read or write of the table with 503.
func (h *handler) unavailable(w http.ResponseWriter, r *http.Request, what string, err error) {
	h.log.Warn("quota policies could not be "+what, "err", err)
	if errors.Is(err, context.Canceled) {
		return // the caller left
	}
	w.Header().Set("Retry-After", "1")
	problem.Write(w, r, http.StatusServiceUnavailable, "the quota policies cannot be "+what+" now; retry shortly")
}

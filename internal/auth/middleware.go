package auth

import (
	"context"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/inarious/inarious/internal/problem"
)

// Headers a key is read from.
const (
	KeyHeader = "X-API-Key"
	// Realm is named in WWW-Authenticate.
	Realm = "inarious"
)

type ctxKey struct{}

// NewContext returns ctx carrying p.
func NewContext(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the principal of an authenticated request.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}

// Rule is one row of the policy: requests whose route template is Template
// (or, with Prefix, starts with it) and whose method is one of Methods (any,
// if empty) need one of Scopes; no Scopes means the route is open. Own
// additionally requires the {client} route variable to be the key's own
// client name, unless the key is admin.
type Rule struct {
	Template string
	Prefix   bool
	Methods  []string
	Scopes   []Scope
	Own      bool
}

var (
	reads  = []string{http.MethodGet, http.MethodHead}
	writes = []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
)

// Policy is the default table, first match wins. Routes it does not list
// need admin, so a route added later is closed until it is given a rule.
var Policy = []Rule{
	{Template: "/healthz"},
	{Template: "/readyz"},
	{Template: "/metrics"},
	{Template: "/openapi.json"},
	{Template: "/openapi.yaml"},
	{Template: "/usage", Methods: reads, Scopes: []Scope{Admin}},
	{Template: "/usage/{client}", Methods: reads, Scopes: []Scope{UsageRead}, Own: true},
	{Template: "/usage/{client}/series", Methods: reads, Scopes: []Scope{UsageRead}, Own: true},
	{Template: "/users", Methods: reads, Scopes: []Scope{UsersRead}},
	{Template: "/users", Methods: writes, Scopes: []Scope{UsersWrite}},
	{Template: "/users/{id}", Methods: reads, Scopes: []Scope{UsersRead}},
	{Template: "/users/{id}", Methods: writes, Scopes: []Scope{UsersWrite}},
	// The dashboard streams every client's usage.
	{Template: "/dashboard", Prefix: true, Scopes: []Scope{Admin}},
}

// fallback applies to matched routes no rule lists.
var fallback = Rule{Scopes: []Scope{Admin}}

func (r Rule) matches(template, method string) bool {
	if r.Prefix {
		if template != r.Template && !strings.HasPrefix(template, strings.TrimSuffix(r.Template, "/")+"/") {
			return false
		}
	} else if template != r.Template {
		return false
	}
	return len(r.Methods) == 0 || containsString(r.Methods, method)
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// ruleFor finds the rule of a request; ok is false for requests that
// matched no route (the router answers 404 or 405 itself).
func ruleFor(policy []Rule, r *http.Request) (Rule, bool) {
	route := mux.CurrentRoute(r)
	if route == nil {
		return Rule{}, false
	}
	template, err := route.GetPathTemplate()
	if err != nil {
		return fallback, true
	}
	for _, rule := range policy {
		if rule.matches(template, r.Method) {
			return rule, true
		}
	}
	return fallback, true
}

// presentedKey reads the key from X-API-Key or Authorization: Bearer. Both
// present and different is treated as a wrong key.
func presentedKey(r *http.Request) (key string, present bool) {
	header := strings.TrimSpace(r.Header.Get(KeyHeader))
	bearer := ""
	if scheme, token, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " "); ok && strings.EqualFold(scheme, "Bearer") {
		bearer = strings.TrimSpace(token)
	}
	switch {
	case header != "" && bearer != "" && header != bearer:
		return "", true
	case header != "":
		return header, true
	case bearer != "":
		return bearer, true
	}
	return "", false
}

// Identify is told the client name of each request a key authenticated,
// before the handler runs; api.SetClient counts the request under it.
type Identify func(r *http.Request, client string)

// Middleware authenticates and authorizes every routed request per Policy.
// Register it with the router inside the activity middleware (after it), so
// identify can name the client of the activity event. With no keys it
// passes every request through.
func Middleware(keys *Keys, identify Identify) mux.MiddlewareFunc {
	return MiddlewareWithPolicy(keys, identify, Policy)
}

// MiddlewareWithPolicy is Middleware with its own table.
func MiddlewareWithPolicy(keys *Keys, identify Identify, policy []Rule) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		if keys.Len() == 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rule, routed := ruleFor(policy, r)
			key, present := presentedKey(r)
			p, valid := keys.Lookup(key)
			if valid {
				// Counted under the key's client even when it is then
				// refused, so a key probing what it may not do shows up.
				if identify != nil {
					identify(r, p.Client)
				}
				r = r.WithContext(NewContext(r.Context(), p))
			}
			if !routed || len(rule.Scopes) == 0 {
				// Open: a bad key is ignored, so a stale probe keeps working.
				next.ServeHTTP(w, r)
				return
			}
			switch {
			case !present:
				unauthorized(w, r, `Bearer realm="`+Realm+`"`, "an API key is required: send it as "+KeyHeader+" or Authorization: Bearer")
				return
			case !valid:
				unauthorized(w, r, `Bearer realm="`+Realm+`", error="invalid_token"`, "the API key is not valid")
				return
			}
			if !allowed(p, rule) {
				problem.Write(w, r, http.StatusForbidden, "the API key lacks the scope "+string(rule.Scopes[0])+" needed here")
				return
			}
			if rule.Own && !p.Has(Admin) && mux.Vars(r)["client"] != p.Client {
				problem.Write(w, r, http.StatusForbidden, "a key may read only its own client's usage unless it has the admin scope")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func allowed(p Principal, rule Rule) bool {
	for _, s := range rule.Scopes {
		if p.Has(s) {
			return true
		}
	}
	return false
}

func unauthorized(w http.ResponseWriter, r *http.Request, challenge, detail string) {
	w.Header().Set("WWW-Authenticate", challenge)
	problem.Write(w, r, http.StatusUnauthorized, detail)
}

package auth

import (
	"context"
	"fmt"
	"net/http"
	"slices"
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

// Rule is what one route needs: a request routed to the route with path
// template Template, by one of Methods (any, if nil), needs a key with Scope
// unless Scope is Public. Own also requires the {client} route variable to
// be the key's own client name, unless the key is admin.
type Rule struct {
	Methods  []string
	Template string
	Scope    Scope
	Own      bool
}

// Policy finds the rule of a routed request by its route's template and method.
type Policy struct {
	rules map[ruleKey]Rule
}

// ruleKey has method "" for a rule that covers every method.
type ruleKey struct{ method, template string }

// NewPolicy checks that every rule names a known scope, so a route declared
// without one stops the binary at start instead of being open or closed by
// accident, and that no route is declared twice.
func NewPolicy(rules []Rule) (*Policy, error) {
	p := &Policy{rules: make(map[ruleKey]Rule, len(rules))}
	for _, rule := range rules {
		name := strings.Join(rule.Methods, ",") + " " + rule.Template
		if rule.Methods == nil {
			name = "* " + rule.Template
		}
		switch {
		case rule.Scope == "":
			return nil, fmt.Errorf("route %s declares no scope: give it one, or auth.Public to leave it open", name)
		case rule.Scope != Public && !slices.Contains(knownScopes, rule.Scope):
			return nil, fmt.Errorf("route %s: unknown scope %q", name, rule.Scope)
		case rule.Own && rule.Scope == Public:
			return nil, fmt.Errorf("route %s: an open route cannot be limited to the key's own client", name)
		}
		methods := rule.Methods
		if methods == nil {
			methods = []string{""}
		}
		for _, m := range methods {
			k := ruleKey{m, rule.Template}
			if _, dup := p.rules[k]; dup {
				return nil, fmt.Errorf("route %s is declared twice", name)
			}
			p.rules[k] = rule
		}
	}
	return p, nil
}

// fallback applies to a routed request the policy has no rule for, which
// happens only for a route mounted without its declaration: fail closed.
var fallback = Rule{Scope: Admin}

// ruleFor finds the rule of a request; ok is false for requests that
// matched no route (the router answers 404 or 405 itself).
func (p *Policy) ruleFor(r *http.Request) (Rule, bool) {
	route := mux.CurrentRoute(r)
	if route == nil {
		return Rule{}, false
	}
	template, err := route.GetPathTemplate()
	if err != nil {
		return fallback, true
	}
	if rule, ok := p.rules[ruleKey{r.Method, template}]; ok {
		return rule, true
	}
	if rule, ok := p.rules[ruleKey{"", template}]; ok {
		return rule, true
	}
	return fallback, true
}

// presentedKey reads the key from X-API-Key or Authorization: Bearer.
func presentedKey(r *http.Request) (key string, present bool) {
	return PresentedKey(r.Header.Get(KeyHeader), r.Header.Get("Authorization"))
}

// PresentedKey is the key sent as X-API-Key (apiKey) or in an
// Authorization value (authorization, "Bearer KEY"), over HTTP or as gRPC
// metadata. Both present and different is treated as a wrong key.
func PresentedKey(apiKey, authorization string) (key string, present bool) {
	header := strings.TrimSpace(apiKey)
	bearer := ""
	if scheme, token, ok := strings.Cut(strings.TrimSpace(authorization), " "); ok && strings.EqualFold(scheme, "Bearer") {
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
// before the handler runs; the API counts the request under it.
type Identify func(r *http.Request, client string)

// Middleware authenticates and authorizes every routed request per policy.
// Register it with the router inside the activity middleware (after it), so
// identify can name the client of the activity event. With no keys it
// passes every request through.
func Middleware(keys *Keys, policy *Policy, identify Identify) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		if keys.Len() == 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rule, routed := policy.ruleFor(r)
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
			if !routed || rule.Scope == Public {
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
			if !p.Has(rule.Scope) {
				problem.Write(w, r, http.StatusForbidden, "the API key lacks the scope "+string(rule.Scope)+" needed here")
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

func unauthorized(w http.ResponseWriter, r *http.Request, challenge, detail string) {
	w.Header().Set("WWW-Authenticate", challenge)
	problem.Write(w, r, http.StatusUnauthorized, detail)
}

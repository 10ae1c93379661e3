package alerts

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/inarious/inarious/internal/quotas"
	"github.com/inarious/inarious/internal/windows"
)

// Kind is what a rule watches.
type Kind string

// The kinds of rules. Client kinds are evaluated by the usage group, which
// owns a client's row; endpoint kinds by the endpoints group.
const (
	// ClientUsage: a client's calls in a window reach a share of Limit,
	// or of the limit Quota names in the client's quota policy
	// (Thresholds in percent: 80, 100, 200).
	ClientUsage Kind = "client_usage"
	// ClientErrorRate: the share of a client's calls with a known status
	// that failed (4xx, 5xx) in a window reaches Thresholds (percent).
	ClientErrorRate Kind = "client_error_rate"
	// EndpointP99: an endpoint's p99 latency in a window reaches Thresholds
	// (milliseconds).
	EndpointP99 Kind = "endpoint_p99"
	// EndpointErrorRate: an endpoint's error rate in a window reaches
	// Thresholds (percent).
	EndpointErrorRate Kind = "endpoint_error_rate"
)

// Kinds are the kinds a rule may have, in the order the API lists them.
var Kinds = []Kind{ClientUsage, ClientErrorRate, EndpointP99, EndpointErrorRate}

// ForClients is whether the usage group evaluates rules of k.
func (k Kind) ForClients() bool { return k == ClientUsage || k == ClientErrorRate }

// Any is the client or endpoint of a rule that watches every one.
const Any = "*"

// Limits of a rule.
const (
	MaxThresholds = 8
	// MaxUsageThreshold is the highest threshold of a client_usage rule,
	// in percent of its limit: 100 times it.
	MaxUsageThreshold = 10000
	maxNameLen        = 128
	maxKeyLen         = 1024
)

var namePattern = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// Webhook is where a rule's alerts are POSTed, and the secret their
// signature is made with (Sign).
type Webhook struct {
	URL    string `json:"url"`
	Secret string `json:"secret,omitempty"`
}

// Rule is an alert rule as stored (topic RulesTopic, keyed by Name).
type Rule struct {
	Name string `json:"name"`
	Kind Kind   `json:"kind"`
	// Client (client kinds) or Endpoint (endpoint kinds, "METHOD /route"):
	// the one watched, or Any.
	Client   string `json:"client,omitempty"`
	Endpoint string `json:"endpoint,omitempty"`
	// Window is one of the kept bucket steps (--windows), e.g. "1m"; with
	// Quota, the quota's window (Validate fills it in).
	Window string `json:"window"`
	// Limit is the calls per window ClientUsage's thresholds are shares of.
	Limit uint64 `json:"limit,omitempty"`
	// Quota, instead of Limit, names a limit of the client's quota policy
	// (its own, else the default) as RateLimit-Policy names it: "1m",
	// "1d POST /users", "1h shop"; the thresholds are shares of its count
	// as the policy in force says when an event is counted.
	Quota string `json:"quota,omitempty"`
	// Thresholds each fire once per window when crossed: percent of Limit
	// or of the quota (ClientUsage), percent (error rates) or milliseconds
	// (EndpointP99).
	Thresholds []float64 `json:"thresholds"`
	// MinCalls is how many calls (timed calls for EndpointP99) a window
	// needs before a rate or p99 rule looks at it (default 1).
	MinCalls uint64 `json:"min_calls,omitempty"`
	// Webhook of this rule; without one alerts go to the global webhook
	// (--alert-webhook-url), or are dead-lettered if there is none.
	Webhook   *Webhook  `json:"webhook,omitempty"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// ParseRule reads a rule's JSON body, rejecting unknown fields.
func ParseRule(name string, body []byte) (Rule, error) {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	var r Rule
	if err := dec.Decode(&r); err != nil {
		return Rule{}, &FieldErrors{Body: "not a rule: " + err.Error()}
	}
	if dec.More() {
		return Rule{}, &FieldErrors{Body: "one JSON object expected"}
	}
	if r.Name != "" && r.Name != name {
		return Rule{}, &FieldErrors{Fields: map[string]string{"name": "differs from the name in the path"}}
	}
	r.Name = name
	return r, nil
}

// FieldErrors says what is wrong with a rule: the body as a whole, or
// fields by name.
type FieldErrors struct {
	Body   string
	Fields map[string]string
}

func (e *FieldErrors) Error() string {
	if e.Body != "" {
		return e.Body
	}
	var parts []string
	for f, m := range e.Fields {
		parts = append(parts, f+": "+m)
	}
	return "invalid rule: " + strings.Join(parts, "; ")
}

// Validate checks r against the kept windows w; a rule on a quota without
// a window gets the quota's.
func (r *Rule) Validate(w windows.Config) error {
	bad := map[string]string{}
	if len(r.Name) == 0 || len(r.Name) > maxNameLen || !namePattern.MatchString(r.Name) {
		bad["name"] = fmt.Sprintf("1 to %d letters, digits, '.', '_' or '-'", maxNameLen)
	}
	switch {
	case r.Kind == "":
		bad["kind"] = "required: " + kindList()
	case !validKind(r.Kind):
		bad["kind"] = "unknown; one of " + kindList()
	case r.Kind.ForClients():
		if r.Client == "" || len(r.Client) > maxKeyLen {
			bad["client"] = `required: a client, or "*" for every client`
		}
		if r.Endpoint != "" {
			bad["endpoint"] = "not for a client rule"
		}
	default:
		if r.Endpoint == "" || len(r.Endpoint) > maxKeyLen {
			bad["endpoint"] = `required: "METHOD /route", or "*" for every endpoint`
		}
		if r.Client != "" {
			bad["client"] = "not for an endpoint rule"
		}
	}
	if r.Quota != "" {
		r.checkQuota(w, bad)
	}
	if step, err := windows.ParseDuration(r.Window); err != nil {
		if r.Window != "" || r.Quota == "" || r.Kind != ClientUsage { // else the quota's error says it
			bad["window"] = "required: one of the kept steps " + windows.FormatSpecs(w.Specs)
		}
	} else if _, ok := w.Spec(step); !ok {
		bad["window"] = "not a kept step; kept: " + windows.FormatSpecs(w.Specs)
	}
	switch {
	case r.Kind == ClientUsage && r.Limit != 0 && r.Quota != "":
		bad["limit"] = "give limit or quota, not both"
	case r.Kind == ClientUsage && r.Limit == 0 && r.Quota == "":
		bad["limit"] = "required: calls per window, at least 1 (or quota: a limit of the client's quota policy)"
	case r.Kind != ClientUsage && r.Limit != 0:
		bad["limit"] = "only for client_usage"
	}
	if msg := checkThresholds(r.Kind, r.Thresholds); msg != "" {
		bad["thresholds"] = msg
	}
	if r.MinCalls != 0 && r.Kind == ClientUsage {
		bad["min_calls"] = "not for client_usage"
	}
	if r.Webhook != nil {
		if u, err := url.Parse(r.Webhook.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad["webhook.url"] = "an absolute http or https URL"
		}
		if r.Webhook.Secret == "" {
			bad["webhook.secret"] = "required: the key of the signature"
		}
	}
	if len(bad) > 0 {
		return &FieldErrors{Fields: bad}
	}
	return nil
}

// checkQuota checks a rule's quota, and fills in its window.
func (r *Rule) checkQuota(w windows.Config, bad map[string]string) {
	if r.Kind != ClientUsage {
		bad["quota"] = "only for client_usage"
		return
	}
	l, err := quotas.ParseLimitName(r.Quota)
	if err != nil {
		bad["quota"] = err.Error() + `; a limit as RateLimit-Policy names it: "WINDOW", "WINDOW SERVICE", "WINDOW METHOD /route" or "WINDOW SERVICE METHOD /route"`
		return
	}
	if msg := quotas.CheckWindow(l.Window, w); msg != "" {
		bad["quota"] = msg
		return
	}
	if r.Window == "" {
		r.Window = l.Window
	} else if step, err := windows.ParseDuration(r.Window); err == nil && step != l.Step() {
		bad["window"] = "differs from the quota's window " + l.Window + " (it may be left out)"
	}
}

func checkThresholds(k Kind, ts []float64) string {
	if len(ts) == 0 || len(ts) > MaxThresholds {
		return fmt.Sprintf("1 to %d thresholds", MaxThresholds)
	}
	for i, t := range ts {
		if math.IsNaN(t) || t <= 0 || math.IsInf(t, 0) {
			return "each above 0"
		}
		if (k == ClientErrorRate || k == EndpointErrorRate) && t > 100 {
			return "percentages up to 100"
		}
		if k == ClientUsage && t > MaxUsageThreshold {
			return fmt.Sprintf("percent of the limit, up to %d", MaxUsageThreshold)
		}
		if i > 0 && t <= ts[i-1] {
			return "in increasing order"
		}
	}
	return ""
}

func validKind(k Kind) bool {
	for _, known := range Kinds {
		if k == known {
			return true
		}
	}
	return false
}

func kindList() string {
	s := make([]string, len(Kinds))
	for i, k := range Kinds {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// Public is r as the API shows it: the webhook's secret is never shown.
func (r Rule) Public() PublicRule {
	p := PublicRule{Rule: r}
	if r.Webhook != nil {
		p.Webhook = &PublicWebhook{URL: r.Webhook.URL, SecretSet: r.Webhook.Secret != ""}
	}
	return p
}

// PublicRule is a rule without its secret.
type PublicRule struct {
	Rule
	Webhook *PublicWebhook `json:"webhook,omitempty"`
}

// PublicWebhook is a webhook without its secret.
type PublicWebhook struct {
	URL       string `json:"url"`
	SecretSet bool   `json:"secret_set"`
}

// RuleCodec encodes rules as JSON (goka.Codec).
type RuleCodec struct{}

// Encode implements goka.Codec.
func (RuleCodec) Encode(v any) ([]byte, error) {
	switch r := v.(type) {
	case *Rule:
		return json.Marshal(r)
	case Rule:
		return json.Marshal(r)
	}
	return nil, fmt.Errorf("alerts: cannot encode %T as a rule", v)
}

// Decode implements goka.Codec.
func (RuleCodec) Decode(data []byte) (any, error) {
	r := new(Rule)
	if err := json.Unmarshal(data, r); err != nil {
		return nil, fmt.Errorf("alerts: rule: %w", err)
	}
	if r.Name == "" {
		return nil, errors.New("alerts: rule without a name")
	}
	return r, nil
}

package middleware

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/inarious/inarious/internal/auth"
	"github.com/inarious/inarious/internal/quotas"
	"github.com/inarious/inarious/internal/quotas/enforce"
	"github.com/inarious/inarious/internal/quotas/quotahttp"
	"github.com/inarious/inarious/internal/windows"
)

// Defaults of WithQuotas.
const (
	DefaultQuotaTimeout    = 100 * time.Millisecond
	DefaultQuotaRefresh    = 250 * time.Millisecond
	DefaultQuotaLag        = time.Second
	DefaultQuotaMaxClients = 10_000
)

// QuotaOption configures WithQuotas.
type QuotaOption func(*quotaConfig)

type quotaConfig struct {
	url        string
	apiKey     string
	client     *http.Client
	timeout    time.Duration
	limiter    enforce.Config
	failClosed bool
}

// QuotaAPIKey sends key as X-API-Key with each check (the key needs the
// scope quotas:check).
func QuotaAPIKey(key string) QuotaOption { return func(q *quotaConfig) { q.apiKey = key } }

// QuotaHTTPClient sends the checks (default a client of its own).
func QuotaHTTPClient(c *http.Client) QuotaOption { return func(q *quotaConfig) { q.client = c } }

// QuotaTimeout bounds a check, and so how long a request can wait for one
// (default DefaultQuotaTimeout). A check that takes longer failed.
func QuotaTimeout(d time.Duration) QuotaOption {
	return func(q *quotaConfig) {
		if d > 0 {
			q.timeout = d
		}
	}
}

// QuotaRefresh is how long a client's answer is used before it is asked
// again (default DefaultQuotaRefresh): the checks cost one request per
// active client per refresh, not one per call.
func QuotaRefresh(d time.Duration) QuotaOption {
	return func(q *quotaConfig) { q.limiter.Refresh = d }
}

// QuotaLag bounds how long a call admitted here takes to show in
// Inarious' answers (the event's trip: the transport's linger, the
// server's dedupe stage, the usage table); the calls admitted within it
// before a check count on top of its answer (default DefaultQuotaLag).
// Longer wastes quota, shorter risks overshoot.
func QuotaLag(d time.Duration) QuotaOption { return func(q *quotaConfig) { q.limiter.Lag = d } }

// QuotaMaxClients bounds the clients whose answers are kept (default
// DefaultQuotaMaxClients); past it the idle ones are forgotten first.
func QuotaMaxClients(n int) QuotaOption {
	return func(q *quotaConfig) { q.limiter.MaxClients = n }
}

// QuotaFailClosed refuses a client's calls with 503 while Inarious cannot
// answer for it. By default quotas fail open: a client is decided on the
// last answer and the calls admitted here since (a client never answered
// for is allowed).
func QuotaFailClosed() QuotaOption { return func(q *quotaConfig) { q.failClosed = true } }

// WithQuotas makes the middleware enforce the quota policies of the
// Inarious server at inariousURL ("http://inarious:8080"): a call over
// its client's quota gets 429 with Retry-After, and every call a policy
// covers carries the RateLimit-Policy and RateLimit headers, as Inarious'
// own API answers. The limits that apply are those of all calls, of the
// service (WithService) and of the call's endpoint in it. A client's
// limits and counts come from GET /quotas/{client}/check, asked at most
// once per QuotaRefresh; between checks the calls admitted here are
// counted on top of the last answer, so a burst never passes what the
// answer left. The client is WithClient's, asked before the handler, else
// the address (SetClient comes too late to be checked).
func WithQuotas(inariousURL string, opts ...QuotaOption) Option {
	q := &quotaConfig{url: strings.TrimRight(inariousURL, "/"), timeout: DefaultQuotaTimeout,
		limiter: enforce.Config{Refresh: DefaultQuotaRefresh, Lag: DefaultQuotaLag, MaxClients: DefaultQuotaMaxClients}}
	for _, o := range opts {
		o(q)
	}
	if q.client == nil {
		q.client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	q.limiter.Replicas, q.limiter.FailClosed = 1, q.failClosed
	return func(c *config) { c.quotas = q }
}

// newQuotaLimiter is the limiter WithQuotas asked for, or nil.
func newQuotaLimiter(c config) *enforce.Limiter {
	if c.quotas == nil {
		return nil
	}
	src := &checkSource{cfg: c.quotas, service: c.service}
	return enforce.NewWithSource(src, c.quotas.limiter, enforce.WithLogger(c.log.With("component", "quotas")))
}

// QuotaStats are the quota decisions of a middleware made WithQuotas.
type QuotaStats struct {
	// Allowed and Refused (429) are the calls a policy applied to.
	Allowed, Refused uint64
	// Unavailable are the calls refused with 503 (QuotaFailClosed) while
	// Inarious could not answer; CheckErrors the checks that failed.
	Unavailable, CheckErrors uint64
}

// QuotaStats are m's quota decisions (zero without WithQuotas).
func (m *Middleware) QuotaStats() QuotaStats {
	if m.quota == nil {
		return QuotaStats{}
	}
	t := m.quota.Totals()
	return QuotaStats{Allowed: t.Allowed, Refused: t.Refused, Unavailable: t.Unavailable, CheckErrors: t.ReadErrors}
}

// allow decides r's call by its client's quota, answering it when refused.
func (m *Middleware) allow(w http.ResponseWriter, r *http.Request, route string, next http.Handler) bool {
	d := m.quota.Admit(m.quotaClient(r), m.cfg.service, r.Method+" "+routeBefore(route, next, r))
	enforce.WriteHeaders(w.Header(), d)
	if !d.Allowed {
		enforce.Refuse(w, r, d)
	}
	return d.Allowed
}

// quotaClient is who r's call is counted under, as far as is known before
// the handler runs.
func (m *Middleware) quotaClient(r *http.Request) string {
	if m.cfg.client != nil {
		if c := m.cfg.client(r); c != "" {
			return c
		}
	}
	if m.cfg.address != nil {
		host, _ := m.cfg.address(r)
		return host
	}
	host, _ := remoteAddress(r)
	return host
}

// routeBefore is the route r will match, before the handler runs: route,
// else the template gorilla/mux matched, else the pattern next matches
// when it is a ServeMux.
func routeBefore(route string, next http.Handler, r *http.Request) string {
	if route != "" {
		return route
	}
	if mux, ok := next.(*http.ServeMux); ok {
		if _, p := mux.Handler(r); p != "" {
			return patternPath(p)
		}
	}
	return RouteTemplate(r)
}

// checkSource asks Inarious for a client's limits and counts.
type checkSource struct {
	cfg     *quotaConfig
	service string
}

// maxCheckBytes bounds an answer read (32 limits are about 8 KiB).
const maxCheckBytes = 1 << 20

// Read asks GET /quotas/{client}/check for every limit of the service,
// reserving nothing (the calls reserve themselves, here, and are counted
// when their events arrive).
func (s *checkSource) Read(client string, _ time.Time) (*quotas.Policy, []uint64, error) {
	q := url.Values{"all": {"true"}, "reserve": {"false"}}
	if s.service != "" {
		q.Set("service", s.service)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.url+"/quotas/"+url.PathEscape(client)+"/check?"+q.Encode(), nil)
	if err != nil {
		return nil, nil, err
	}
	if s.cfg.apiKey != "" {
		req.Header.Set(auth.KeyHeader, s.cfg.apiKey)
	}
	resp, err := s.cfg.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCheckBytes))
	if err != nil {
		return nil, nil, fmt.Errorf("quota check: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("quota check answered %s: %.200s", resp.Status, body)
	}
	var c quotahttp.Check
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, nil, fmt.Errorf("quota check: %w", err)
	}
	if c.Policy == "" || len(c.Limits) == 0 {
		return nil, nil, nil
	}
	p := &quotas.Policy{Client: c.Policy, Limits: make([]quotas.Limit, len(c.Limits))}
	used := make([]uint64, len(c.Limits))
	for i, l := range c.Limits {
		if d, err := windows.ParseDuration(l.Window); err != nil || d <= 0 {
			return nil, nil, fmt.Errorf("quota check: limit %d has window %q", i, l.Window)
		}
		p.Limits[i] = l.Limit
		used[i] = l.Limit.Limit - min(l.Remaining, l.Limit.Limit)
	}
	return p, used, nil
}

package alerts

import (
	"context"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/quotas"
	"github.com/inarious/inarious/internal/windows"
)

// Compiled is a rule as evaluators use it: its step, and its thresholds
// as the values they compare (calls, a fraction, or ms).
type Compiled struct {
	Rule
	Step time.Duration
	// Limits are the thresholds in the unit of the observed value: calls
	// (ClientUsage: the share of Limit, rounded up), a fraction (rates) or
	// milliseconds (EndpointP99). A rule on a quota has none: its limit is
	// the client's (Calls).
	Limits []float64
	// OnQuota is, for a rule on a quota, which calls it counts; nil else.
	OnQuota *QuotaScope
}

// QuotaScope is the limit a rule on a quota watches, as the usage row
// keys its calls.
type QuotaScope struct {
	// Scope is the policy limit's (quotas.Limit.Scope).
	Scope string
	// EndpointKey, for a limit of one endpoint, is its key in the usage
	// row (codecs.ServiceEndpointKey).
	EndpointKey string
	// Service, for a limit of a service's calls (and no endpoint), is
	// that service as the row's keys carry it ("" for the default).
	Service   string
	OfService bool
}

// AllCalls is whether the limit counts every call of the client.
func (q *QuotaScope) AllCalls() bool { return q.EndpointKey == "" && !q.OfService }

// StepSeconds is the rule's bucket step in seconds, as buckets give it.
func (c *Compiled) StepSeconds() int64 { return int64(c.Step / time.Second) }

// Calls is threshold i of a ClientUsage rule as a count of calls: its
// share of limit. Counts are whole, so a count reaches it exactly when it
// reaches it rounded up (as Limits have it); the hot path of rules on a
// quota saves the rounding.
func (c *Compiled) Calls(i int, limit uint64) float64 {
	return float64(limit) * c.Thresholds[i] / 100
}

func compile(r Rule) (*Compiled, bool) {
	step, err := windows.ParseDuration(r.Window)
	if err != nil || step < time.Second || len(r.Thresholds) == 0 {
		return nil, false
	}
	c := &Compiled{Rule: r, Step: step, Limits: make([]float64, len(r.Thresholds))}
	if r.Quota != "" {
		l, err := quotas.ParseLimitName(r.Quota)
		if err != nil || r.Kind != ClientUsage || l.Step() != step {
			return nil, false
		}
		c.Limits = nil
		c.OnQuota = &QuotaScope{Scope: l.Scope(), OfService: l.Service != "", Service: codecs.NormalService(l.Service)}
		if l.Endpoint != "" {
			c.OnQuota.EndpointKey = codecs.ServiceEndpointKey(l.Service, l.Endpoint)
		}
	}
	for i, t := range r.Thresholds[:len(c.Limits)] {
		switch r.Kind {
		case ClientUsage:
			c.Limits[i] = math.Ceil(c.Calls(i, r.Limit))
		case ClientErrorRate, EndpointErrorRate:
			c.Limits[i] = t / 100
		default:
			c.Limits[i] = t
		}
	}
	if c.MinCalls == 0 {
		c.MinCalls = 1
	}
	return c, true
}

// Snapshot is the rules at one moment, indexed by what they watch. It is
// never changed: Rules replaces it.
type Snapshot struct {
	byName    map[string]*Compiled
	clients   map[string][]*Compiled
	anyClient []*Compiled
	// Rules on a quota, apart: the others' check stays as it was.
	quotaClients   map[string][]*Compiled
	anyClientQuota []*Compiled
	endpoints      map[string][]*Compiled
	anyEndpoint    []*Compiled
}

func newSnapshot(rules map[string]Rule) *Snapshot {
	s := &Snapshot{byName: map[string]*Compiled{}, clients: map[string][]*Compiled{}, quotaClients: map[string][]*Compiled{},
		endpoints: map[string][]*Compiled{}}
	for _, r := range rules {
		c, ok := compile(r)
		if !ok {
			continue
		}
		s.byName[r.Name] = c
		switch {
		case c.OnQuota != nil && r.Client == Any:
			s.anyClientQuota = append(s.anyClientQuota, c)
		case c.OnQuota != nil:
			s.quotaClients[r.Client] = append(s.quotaClients[r.Client], c)
		case r.Kind.ForClients() && r.Client == Any:
			s.anyClient = append(s.anyClient, c)
		case r.Kind.ForClients():
			s.clients[r.Client] = append(s.clients[r.Client], c)
		case r.Endpoint == Any:
			s.anyEndpoint = append(s.anyEndpoint, c)
		default:
			s.endpoints[r.Endpoint] = append(s.endpoints[r.Endpoint], c)
		}
	}
	return s
}

// HasClientRules is whether any rule watches clients.
func (s *Snapshot) HasClientRules() bool {
	return s != nil && (len(s.clients) > 0 || len(s.anyClient) > 0 || len(s.quotaClients) > 0 || len(s.anyClientQuota) > 0)
}

// ForClient are the rules watching client, but for those on a quota: its
// own, and those on every client.
func (s *Snapshot) ForClient(client string) (own, every []*Compiled) {
	if s == nil {
		return nil, nil
	}
	return s.clients[client], s.anyClient
}

// QuotaRulesFor are the rules on a quota watching client: its own, and
// those on every client.
func (s *Snapshot) QuotaRulesFor(client string) (own, every []*Compiled) {
	if s == nil {
		return nil, nil
	}
	if len(s.quotaClients) > 0 {
		own = s.quotaClients[client]
	}
	return own, s.anyClientQuota
}

// HasEndpointRules is whether any rule watches endpoints.
func (s *Snapshot) HasEndpointRules() bool {
	return s != nil && (len(s.endpoints) > 0 || len(s.anyEndpoint) > 0)
}

// ForEndpoint are the rules watching endpoint: its own, and those on every endpoint.
func (s *Snapshot) ForEndpoint(endpoint string) (own, every []*Compiled) {
	if s == nil {
		return nil, nil
	}
	return s.endpoints[endpoint], s.anyEndpoint
}

// Rule is the rule named name.
func (s *Snapshot) Rule(name string) (*Compiled, bool) {
	if s == nil {
		return nil, false
	}
	c, ok := s.byName[name]
	return c, ok
}

// List is every rule, by name.
func (s *Snapshot) List() []Rule {
	if s == nil {
		return nil
	}
	out := make([]Rule, 0, len(s.byName))
	for _, c := range s.byName {
		out = append(out, c.Rule)
	}
	slices.SortFunc(out, func(a, b Rule) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Rules holds the current rules: the table of RulesTopic as a goka view
// delivers it (Run), or rules set directly (Set, in tests). Reading the
// current snapshot is one atomic load, for the processors' hot paths.
type Rules struct {
	log  *slog.Logger
	mu   sync.Mutex
	all  map[string]Rule
	snap atomic.Pointer[Snapshot]
	// changed is closed and replaced on every change (WaitFor).
	changed chan struct{}
	// recovered is closed once the view has read the whole topic (or at
	// once without a view).
	recovered *kafka.Latch
	// cfg, if not nil, is where Run follows RulesTopic.
	cfg *kafka.Config
}

// NewRules holds no rules and is recovered: Set fills it.
func NewRules() *Rules {
	r := newRules(slog.Default())
	r.recovered.Close()
	return r
}

func newRules(log *slog.Logger) *Rules {
	r := &Rules{log: log, all: map[string]Rule{}, changed: make(chan struct{}), recovered: kafka.NewLatch()}
	r.snap.Store(newSnapshot(nil))
	return r
}

// NewRulesView follows RulesTopic once Run runs (the topic must exist
// then), with a goka view in memory: the table is small.
func NewRulesView(cfg kafka.Config, log *slog.Logger) *Rules {
	if log == nil {
		log = slog.Default()
	}
	r := newRules(log)
	r.cfg = &cfg
	return r
}

// Run follows the topic until ctx ends.
func (r *Rules) Run(ctx context.Context) error {
	if r.cfg == nil {
		<-ctx.Done()
		return nil
	}
	return r.cfg.RunMemoryView(ctx, r.log, RulesTable, RuleCodec{}, r.update, r.recovered)
}

// Recovered is whether the whole topic has been read.
func (r *Rules) Recovered() bool { return r.recovered.Closed() }

// WaitRecovered waits until the whole topic has been read, so no crossing
// is missed for want of its rule.
func (r *Rules) WaitRecovered(ctx context.Context) error { return r.recovered.Wait(ctx) }

// update is the view's callback: it stores the record and applies it.
func (r *Rules) update(ctx goka.UpdateContext, s storage.Storage, key string, value []byte) error {
	if err := goka.DefaultUpdate(ctx, s, key, value); err != nil {
		return err
	}
	if value == nil {
		r.Delete(key)
		return nil
	}
	v, err := RuleCodec{}.Decode(value)
	if err != nil {
		r.log.Warn("alert rule ignored: it does not decode", "rule", key, "err", err)
		return nil
	}
	rule := *v.(*Rule)
	rule.Name = key
	r.Set(rule)
	return nil
}

// Set adds or replaces a rule.
func (r *Rules) Set(rule Rule) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all[rule.Name] = rule
	r.publish()
}

// Delete removes the rule named name.
func (r *Rules) Delete(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.all, name)
	r.publish()
}

// publish makes a new snapshot; r.mu is held. Rules change rarely: the
// snapshot is rebuilt whole.
func (r *Rules) publish() {
	r.snap.Store(newSnapshot(r.all))
	close(r.changed)
	r.changed = make(chan struct{})
}

// Current is the rules now.
func (r *Rules) Current() *Snapshot {
	if r == nil {
		return nil
	}
	return r.snap.Load()
}

// WaitFor waits until ok holds for the current rules, or ctx ends: the API
// answers a change once its own view shows it.
func (r *Rules) WaitFor(ctx context.Context, ok func(*Snapshot) bool) error {
	for {
		r.mu.Lock()
		changed := r.changed
		r.mu.Unlock()
		if ok(r.Current()) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

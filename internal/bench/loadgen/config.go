// Package loadgen drives a running Inarious over HTTP and measures it:
// throughput, latency percentiles (from the intended send time, so a slow
// server cannot hide its queueing: no coordinated omission), and freshness,
// the time from a response to its count being visible in GET /usage/{client}.
//
// Clients are simulated with X-Forwarded-For, so the target must trust the
// load generator's address (inarious --trusted-proxies 127.0.0.1).
package loadgen

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Scenario is one kind of request the load consists of.
type Scenario string

// The scenarios.
const (
	// UsageGet reads GET /usage/{client} of an existing client (warm-up makes them exist).
	UsageGet Scenario = "usage-get"
	// UsageList is GET /usage?limit=50, the first page of clients by total.
	UsageList Scenario = "usage-list"
	// Healthz is GET /healthz.
	Healthz Scenario = "healthz"
	// UsersCreate is POST /users with a unique email.
	UsersCreate Scenario = "users-create"
	// UsersCRUD cycles create, get, patch, delete; each is one request.
	UsersCRUD Scenario = "users-crud"
	// EndpointGet reads GET /endpoints/{endpoint} of one of Config.Endpoints
	// synthetic endpoints (BenchRoute; inarious-bench fill -endpoints makes them).
	EndpointGet Scenario = "endpoint-get"
	// EndpointList is GET /endpoints?order=p99&limit=50.
	EndpointList Scenario = "endpoint-list"
	// OTLP is POST /v1/traces: an OTLP/HTTP protobuf export of Config.Batch
	// server spans (default 512), spread over the load clients.
	OTLP Scenario = "otlp"
	// Events is POST /events: a JSON batch of Config.Batch activity events
	// (default 100), spread over the load clients.
	Events Scenario = "events"
)

var scenarios = []Scenario{UsageGet, UsageList, Healthz, UsersCreate, UsersCRUD, EndpointGet, EndpointList, OTLP, Events}

// WeightedScenario is one part of a Mix.
type WeightedScenario struct {
	Scenario Scenario `json:"scenario"`
	Weight   int      `json:"weight"`
}

// Mix is the share of each scenario in the load.
type Mix []WeightedScenario

// Mixed is the preset of --mix mixed: mostly reads, some writes.
var Mixed = Mix{{UsageGet, 6}, {Healthz, 2}, {UsersCreate, 1}, {UsersCRUD, 1}}

// ParseMix reads "mixed", one scenario, or "scenario:weight,..." (weight 1
// when left out), e.g. "usage-get:8,users-create:2".
func ParseMix(s string) (Mix, error) {
	s = strings.TrimSpace(s)
	if s == "mixed" {
		return append(Mix(nil), Mixed...), nil
	}
	var m Mix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, weight, hasWeight := strings.Cut(part, ":")
		w := 1
		if hasWeight {
			n, err := strconv.Atoi(weight)
			if err != nil || n < 1 || n > 1000 {
				return nil, fmt.Errorf("mix: weight of %q must be an integer from 1 to 1000", name)
			}
			w = n
		}
		sc := Scenario(name)
		known := false
		for _, k := range scenarios {
			known = known || k == sc
		}
		if !known {
			return nil, fmt.Errorf("mix: unknown scenario %q (want usage-get, usage-list, healthz, users-create, users-crud, endpoint-get, endpoint-list, otlp, events or mixed)", name)
		}
		m = append(m, WeightedScenario{sc, w})
	}
	if len(m) == 0 {
		return nil, errors.New("mix: empty")
	}
	return m, nil
}

// String is the form ParseMix reads.
func (m Mix) String() string {
	parts := make([]string, len(m))
	for i, w := range m {
		parts[i] = fmt.Sprintf("%s:%d", w.Scenario, w.Weight)
	}
	return strings.Join(parts, ",")
}

func (m Mix) has(s Scenario) bool {
	for _, w := range m {
		if w.Scenario == s {
			return true
		}
	}
	return false
}

// hasOther reports whether m has a scenario other than those.
func (m Mix) hasOther(those ...Scenario) bool {
	for _, w := range m {
		if !slices.Contains(those, w.Scenario) {
			return true
		}
	}
	return false
}

// table spreads the scenarios by weight, for picking one with a random index.
func (m Mix) table() []Scenario {
	var t []Scenario
	for _, w := range m {
		for i := 0; i < w.Weight; i++ {
			t = append(t, w.Scenario)
		}
	}
	return t
}

// Config is one load run. Every run is bounded: by Duration, and by
// Requests when it is positive.
type Config struct {
	// Target is the base URL, e.g. http://127.0.0.1:8080.
	Target string
	// Clients is how many client identities (X-Forwarded-For) the load uses.
	Clients int
	// Endpoints is how many synthetic endpoints endpoint-get reads.
	Endpoints int
	// Connections is the number of workers and keep-alive connections.
	Connections int
	// Rate is the open-loop target in requests/s; 0 runs closed-loop, flat out.
	Rate float64
	// Duration bounds the run; Requests (when > 0) bounds it too.
	Duration time.Duration
	Requests int64
	Mix      Mix

	// Batch is how many spans (otlp) or events (events) one request
	// carries; 0 takes DefaultOTLPBatch or DefaultEventsBatch.
	Batch int
	// Gzip compresses the ingest bodies (Content-Encoding: gzip).
	Gzip bool

	// ProbeEvery makes every Nth request a freshness probe (0: no probes).
	ProbeEvery int
	// ProbeClients is how many probe identities exist; each has at most one
	// probe in flight, so its expected count is exact.
	ProbeClients int
	// PollInterval is how often a probe's usage is read until it shows.
	PollInterval time.Duration
	// FreshnessTimeout ends a probe that never shows.
	FreshnessTimeout time.Duration

	// Timeout bounds each request.
	Timeout time.Duration
	// Warmup makes the Clients exist in the usage table before a run that
	// reads usage, and waits until they are visible.
	Warmup bool
	// Seed makes identities and choices reproducible; 0 picks one.
	Seed uint64
}

// Defaults are the flags' defaults.
func Defaults() Config {
	return Config{
		Target:           "http://127.0.0.1:8080",
		Clients:          100,
		Endpoints:        10000,
		Connections:      16,
		Duration:         10 * time.Second,
		Mix:              Mix{{UsageGet, 1}},
		ProbeEvery:       50,
		ProbeClients:     16,
		PollInterval:     time.Millisecond,
		FreshnessTimeout: 5 * time.Second,
		Timeout:          10 * time.Second,
		Warmup:           true,
	}
}

// MaxClients is the number of distinct load identities available.
const MaxClients = 65534

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	u, err := url.Parse(c.Target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("target must be an http(s) URL, not %q", c.Target)
	}
	switch {
	case c.Clients < 1 || c.Clients > MaxClients:
		return fmt.Errorf("clients must be from 1 to %d", MaxClients)
	case c.Connections < 1 || c.Connections > 4096:
		return errors.New("connections must be from 1 to 4096")
	case c.Rate < 0:
		return errors.New("rate must be >= 0")
	case c.Duration <= 0:
		return errors.New("duration must be > 0: every run is bounded in time")
	case c.Requests < 0:
		return errors.New("requests must be >= 0")
	case c.Batch < 0 || c.Batch > 100000:
		return errors.New("batch must be from 0 (the scenario's default) to 100000")
	case len(c.Mix) == 0:
		return errors.New("mix is empty")
	case c.ProbeEvery < 0:
		return errors.New("probe-every must be >= 0")
	case c.ProbeEvery > 0 && (c.ProbeClients < 1 || c.ProbeClients > 4096):
		return errors.New("probe-clients must be from 1 to 4096")
	case c.ProbeEvery > 0 && c.PollInterval <= 0:
		return errors.New("poll-interval must be > 0")
	case c.ProbeEvery > 0 && c.FreshnessTimeout <= 0:
		return errors.New("freshness-timeout must be > 0")
	case c.Timeout <= 0:
		return errors.New("timeout must be > 0")
	}
	return nil
}

// BenchRoute is the route of synthetic endpoint i: its endpoint is
// "GET " + BenchRoute(i).
func BenchRoute(i int) string { return fmt.Sprintf("/bench/%05d", i) }

// Package app wires Inarious' parts into the processes the binary runs:
// the API, a worker, or both on an embedded broker.
package app

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/inarious/inarious/internal/auth"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/processors/dedupe"
)

// Config is every setting of the binary. Each has a flag and an
// INARIOUS_<FLAG> environment variable; a flag wins over the environment.
type Config struct {
	Kafka kafka.Config
	// Brokers as given; empty in the all-in-one mode means "embedded".
	Brokers           string
	EmbeddedKafkaPort int
	Listen            string
	DataDir           string
	LogLevel          string
	LogFormat         string
	TrustedProxies    string
	APIKeysFile       string
	APIKeys           string
	EventBuffer       int
	// APIProducer is the Kafka client the API's activity events are
	// produced with: kafka.ProducerFranz or kafka.ProducerSarama.
	APIProducer       string
	ShutdownTimeout   time.Duration
	Store             string
	ArangoURL         string
	ArangoDatabase    string
	ArangoUser        string
	ArangoPassword    string
	MaxBodyBytes      int64
	ReadHeaderTimeout time.Duration
	RequestTimeout    time.Duration
	IdleTimeout       time.Duration
	// MetricsListen serves a worker's /metrics and /healthz (worker mode; the
	// API serves them on its own address).
	MetricsListen string
	DebugPages    bool
	// SchemaRegistry is the Confluent-compatible registry URL (empty: off).
	SchemaRegistry string
	// QueryListen serves a worker's reads of its own partitions (empty:
	// off); QueryAdvertise is the address it tells the group (default: the
	// address it listens on).
	QueryListen    string
	QueryAdvertise string
	// UsageSource is where the API reads usage: UsageFromView or UsageFromWorkers.
	UsageSource string
	// Windows are the granularities of windowed usage, step:retention,...
	Windows     string
	WindowGrace time.Duration
	// ClientRetention deletes clients not seen for this long (0: never).
	ClientRetention time.Duration
	// GCPercent is the GC target (0: Go's default, or GOGC).
	GCPercent int
	// OTLPClientAttribute is the span attribute OTLP calls are counted
	// under (empty: the client's address).
	OTLPClientAttribute string
	// OTLPGRPCListen is where the OTLP/gRPC traces receiver listens
	// (empty: off).
	OTLPGRPCListen string
	// DedupeWindow is how long the ids of ingested events are remembered
	// (0: the ingest endpoints publish to Users, without dedupe).
	DedupeWindow time.Duration
	// DedupeMaxIDs caps the ids a worker's dedupe member holds (0: no cap).
	DedupeMaxIDs int
	// Quotas enforces the quota policies and serves /quotas (API).
	Quotas bool
	// QuotaRefresh, QuotaLag and QuotaReplicas tune the limiter
	// (enforce.Config); QuotaExempt lists the route templates it leaves alone.
	QuotaRefresh  time.Duration
	QuotaLag      time.Duration
	QuotaReplicas int
	QuotaExempt   string
	// Alerts: the global webhook (rules without their own), and the
	// deliverer's retry budget (worker).
	AlertWebhookURL    string
	AlertWebhookSecret string
	AlertAttempts      int
	AlertBackoff       time.Duration
	// alerting, set by runWorker, is what the worker's groups evaluate
	// alert rules with; nil elsewhere (the API builds groups only for
	// their topics).
	alerting *workerAlerting
}

// Where the API reads usage from (--usage-source).
const (
	UsageFromView    = "view"
	UsageFromWorkers = "workers"
)

// EnvPrefix starts every environment variable the binary reads.
const EnvPrefix = "INARIOUS_"

// EnvName is the environment variable of a flag.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// FlagSet declares the flags of cfg, with its current values as defaults.
func FlagSet(name string, cfg *Config) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&cfg.Brokers, "brokers", cfg.Brokers, "Kafka bootstrap brokers, comma-separated (all-in-one mode: empty starts the embedded broker)")
	fs.StringVar(&cfg.Kafka.Version, "kafka-version", cfg.Kafka.Version, "Kafka protocol version the client speaks (>= 2.1)")
	fs.IntVar(&cfg.Kafka.Partitions, "partitions", cfg.Kafka.Partitions, "partitions of the Users topic and the usage table when Inarious creates them")
	fs.IntVar(&cfg.Kafka.Replication, "replication", cfg.Kafka.Replication, "replication factor of the topics Inarious creates")
	fs.IntVar(&cfg.Kafka.MinInsyncReplicas, "min-insync-replicas", cfg.Kafka.MinInsyncReplicas, "min.insync.replicas of the topics Inarious creates, 1..--replication (0: the broker's default)")
	fs.DurationVar(&cfg.Kafka.FlushInterval, "flush-interval", cfg.Kafka.FlushInterval, "longest a produced record waits to be batched")
	fs.StringVar(&cfg.Kafka.Producer, "worker-producer", cfg.Kafka.Producer, "Kafka client the worker's processors produce with: sarama or franz (franz-go)")
	fs.StringVar(&cfg.APIProducer, "api-producer", cfg.APIProducer, "Kafka client the API produces its activity events with: sarama or franz (franz-go)")
	fs.StringVar(&cfg.Kafka.ClientID, "client-id", cfg.Kafka.ClientID, "Kafka client id of this process")
	fs.IntVar(&cfg.EmbeddedKafkaPort, "embedded-kafka-port", cfg.EmbeddedKafkaPort, "port of the embedded broker on 127.0.0.1 (0 picks a free one)")
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "HTTP listen address of the API")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for local table storage, the embedded broker and the embedded users store")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "text or json")
	fs.StringVar(&cfg.TrustedProxies, "trusted-proxies", cfg.TrustedProxies, "comma-separated proxy IPs/CIDRs whose X-Forwarded-For is believed")
	fs.StringVar(&cfg.APIKeysFile, "api-keys-file", cfg.APIKeysFile, "file of API keys, one client:scope1,scope2:sha256hex a line; with no keys the API is open")
	fs.StringVar(&cfg.APIKeys, "api-keys", cfg.APIKeys, "API keys as in --api-keys-file, separated by ';' (for containers: INARIOUS_API_KEYS)")
	fs.IntVar(&cfg.EventBuffer, "event-buffer", cfg.EventBuffer, "activity events the API holds while Kafka is slow or away; beyond it they are dropped and counted")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long shutdown may take to drain requests and flush events")
	fs.StringVar(&cfg.Store, "store", cfg.Store, "users store: embedded or arangodb")
	fs.StringVar(&cfg.ArangoURL, "arango-url", cfg.ArangoURL, "ArangoDB endpoint, e.g. http://localhost:8529")
	fs.StringVar(&cfg.ArangoDatabase, "arango-database", cfg.ArangoDatabase, "ArangoDB database")
	fs.StringVar(&cfg.ArangoUser, "arango-user", cfg.ArangoUser, "ArangoDB user")
	fs.StringVar(&cfg.ArangoPassword, "arango-password", cfg.ArangoPassword, "ArangoDB password (prefer the environment variable)")
	fs.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", cfg.MaxBodyBytes, "largest request body accepted")
	fs.DurationVar(&cfg.ReadHeaderTimeout, "read-header-timeout", cfg.ReadHeaderTimeout, "HTTP read-header timeout")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", cfg.RequestTimeout, "HTTP read and write timeout")
	fs.DurationVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "HTTP keep-alive idle timeout")
	fs.StringVar(&cfg.MetricsListen, "metrics-listen", cfg.MetricsListen, "worker only: address for /metrics and /healthz (empty: off)")
	fs.BoolVar(&cfg.DebugPages, "debug-pages", cfg.DebugPages, "serve goka's monitor and query pages under /debug/goka/ and Go's pprof under /debug/pprof/ on the API address (they expose the usage table and process internals)")
	fs.StringVar(&cfg.SchemaRegistry, "schema-registry", cfg.SchemaRegistry, "Confluent-compatible schema registry URL; the API registers Users-value and writes the Confluent wire format")
	fs.StringVar(&cfg.QueryListen, "query-listen", cfg.QueryListen, "worker only: address serving reads of the partitions this worker owns, advertised in its group membership (empty: off)")
	fs.StringVar(&cfg.QueryAdvertise, "query-advertise", cfg.QueryAdvertise, "worker only: address the API reaches --query-listen at (default: the address it listens on)")
	fs.StringVar(&cfg.UsageSource, "usage-source", cfg.UsageSource, "API only: where GET /usage/{client} reads: view (a full copy of the table) or workers (the worker owning the client's partition, found through --query-listen)")
	fs.StringVar(&cfg.Windows, "windows", cfg.Windows, "windowed usage: tumbling bucket steps and how long they are kept, step:retention,... (empty: off)")
	fs.DurationVar(&cfg.WindowGrace, "window-grace", cfg.WindowGrace, "how long after a bucket's end late events still count in it")
	fs.DurationVar(&cfg.ClientRetention, "client-retention", cfg.ClientRetention, "worker: delete the usage of clients not seen for this long (0: keep forever)")
	fs.IntVar(&cfg.GCPercent, "gc-percent", cfg.GCPercent, "Go GC target percentage (0: Go's default of 100); more trades memory for CPU; GOGC in the environment wins")
	fs.StringVar(&cfg.OTLPClientAttribute, "otlp-client-attribute", cfg.OTLPClientAttribute, "API only: span attribute POST /v1/traces counts a call under, e.g. enduser.id (empty: the client's address, client.address)")
	fs.StringVar(&cfg.OTLPGRPCListen, "otlp-grpc-listen", cfg.OTLPGRPCListen, "API only: address of the OTLP/gRPC traces receiver, e.g. :4317, the same as POST /v1/traces over gRPC (empty: off)")
	fs.DurationVar(&cfg.DedupeWindow, "dedupe-window", cfg.DedupeWindow, "how long the ids of events sent to POST /v1/traces and /events are remembered, so a retried batch is counted once; the same on the API and every worker (0: no dedupe)")
	fs.IntVar(&cfg.DedupeMaxIDs, "dedupe-max-ids", cfg.DedupeMaxIDs, "worker only: most ids a worker remembers, 11 to 17 bytes each; past it the oldest are forgotten before the window ends (0: no cap)")
	fs.BoolVar(&cfg.Quotas, "quotas", cfg.Quotas, "API only: enforce the quota policies (429 over a quota, RateLimit headers) and serve /quotas; needs --windows")
	fs.DurationVar(&cfg.QuotaRefresh, "quota-refresh", cfg.QuotaRefresh, "API only: how long a client's policy and window counts, once read, decide its calls before they are read again")
	fs.DurationVar(&cfg.QuotaLag, "quota-lag", cfg.QuotaLag, "API only: how long an admitted call may take to show in the usage table; calls admitted within it count on top of the table's count")
	fs.IntVar(&cfg.QuotaReplicas, "quota-replicas", cfg.QuotaReplicas, "API only: API replicas sharing clients' calls; each counts its calls not yet in the table this many times, for the others'")
	fs.StringVar(&cfg.QuotaExempt, "quota-exempt", cfg.QuotaExempt, "API only: route templates quotas never refuse, comma-separated (empty: none)")
	fs.StringVar(&cfg.AlertWebhookURL, "alert-webhook-url", cfg.AlertWebhookURL, "worker: webhook that receives the alerts of rules without one of their own (empty: those are dead-lettered)")
	fs.StringVar(&cfg.AlertWebhookSecret, "alert-webhook-secret", cfg.AlertWebhookSecret, "worker: HMAC-SHA256 key of the global webhook's Inarious-Signature (prefer the environment variable)")
	fs.IntVar(&cfg.AlertAttempts, "alert-attempts", cfg.AlertAttempts, "worker: webhook attempts per alert before it is dead-lettered")
	fs.DurationVar(&cfg.AlertBackoff, "alert-backoff", cfg.AlertBackoff, "worker: wait before an alert's first retry, doubled for each next one up to 10s")
	return fs
}

// Defaults is the one-command configuration.
func Defaults() Config {
	return Config{
		Kafka:             kafka.Defaults(),
		EmbeddedKafkaPort: 9092,
		Listen:            "127.0.0.1:8080",
		DataDir:           "data",
		LogLevel:          "info",
		LogFormat:         "text",
		EventBuffer:       1 << 16,
		APIProducer:       kafka.ProducerFranz,
		ShutdownTimeout:   15 * time.Second,
		Store:             "embedded",
		ArangoDatabase:    "inarious",
		ArangoUser:        "root",
		MaxBodyBytes:      64 << 10,
		ReadHeaderTimeout: 5 * time.Second,
		RequestTimeout:    30 * time.Second,
		IdleTimeout:       120 * time.Second,
		UsageSource:       UsageFromView,
		Windows:           "1m:48h,1h:2160h,1d:17520h",
		WindowGrace:       windows.DefaultGrace,
		ClientRetention:   400 * 24 * time.Hour,
		DedupeWindow:      dedupe.DefaultWindow,
		DedupeMaxIDs:      dedupe.DefaultMaxIDs,
		QuotaRefresh:      100 * time.Millisecond,
		QuotaLag:          250 * time.Millisecond,
		QuotaReplicas:     1,
		QuotaExempt:       "/healthz,/readyz,/metrics,/quotas,/quotas/{client},/quotas/{client}/check",
		AlertAttempts:     8,
		AlertBackoff:      250 * time.Millisecond,
	}
}

// Parse reads the environment, then args, over the defaults.
func Parse(name string, args []string, getenv func(string) string) (Config, error) {
	cfg := Defaults()
	fs := FlagSet(name, &cfg)
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(EnvName(f.Name)); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				envErr = errors.Join(envErr, fmt.Errorf("%s: %w", EnvName(f.Name), err))
			}
		}
	})
	if envErr != nil {
		return cfg, envErr
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if cfg.Brokers != "" {
		cfg.Kafka.Brokers = splitList(cfg.Brokers)
	}
	return cfg, cfg.Validate()
}

// Validate reports the first setting that cannot work.
func (c Config) Validate() error {
	switch c.Store {
	case "embedded":
	case "arangodb":
		if c.ArangoURL == "" {
			return errors.New("--store=arangodb needs --arango-url")
		}
	default:
		return fmt.Errorf("--store must be embedded or arangodb, not %q", c.Store)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return err
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("--log-format must be text or json, not %q", c.LogFormat)
	}
	if c.GCPercent < 0 {
		return errors.New("--gc-percent must be >= 0 (GOGC=off turns the collector off)")
	}
	if c.EventBuffer < 1 {
		return errors.New("--event-buffer must be >= 1")
	}
	if c.APIProducer != kafka.ProducerSarama && c.APIProducer != kafka.ProducerFranz {
		return fmt.Errorf("--api-producer must be %s or %s, not %q", kafka.ProducerSarama, kafka.ProducerFranz, c.APIProducer)
	}
	if c.MaxBodyBytes < 1 {
		return errors.New("--max-body-bytes must be >= 1")
	}
	if c.UsageSource != UsageFromView && c.UsageSource != UsageFromWorkers {
		return fmt.Errorf("--usage-source must be %s or %s, not %q", UsageFromView, UsageFromWorkers, c.UsageSource)
	}
	if c.QueryAdvertise != "" && c.QueryListen == "" {
		return errors.New("--query-advertise needs --query-listen")
	}
	if c.DataDir == "" {
		return errors.New("--data-dir must not be empty")
	}
	if _, err := newClientResolver(c.TrustedProxies); err != nil {
		return fmt.Errorf("--trusted-proxies: %w", err)
	}
	if _, err := auth.Load(c.APIKeysFile, c.APIKeys); err != nil {
		return err
	}
	if c.AlertAttempts < 1 || c.AlertBackoff <= 0 {
		return errors.New("--alert-attempts must be >= 1 and --alert-backoff > 0")
	}
	if c.AlertWebhookURL != "" && c.AlertWebhookSecret == "" {
		return errors.New("--alert-webhook-url needs --alert-webhook-secret")
	}
	if c.ClientRetention < 0 {
		return errors.New("--client-retention must not be negative")
	}
	if c.DedupeWindow < 0 || c.DedupeWindow > 0 && c.DedupeWindow < time.Minute {
		return errors.New("--dedupe-window must be 0 (off) or at least 1m")
	}
	if c.DedupeMaxIDs < 0 {
		return errors.New("--dedupe-max-ids must not be negative")
	}
	wcfg, err := c.WindowConfig()
	if err != nil {
		return fmt.Errorf("--windows/--window-grace: %w", err)
	}
	if err := c.validateQuotas(wcfg); err != nil {
		return err
	}
	return c.Kafka.Validate()
}

func (c Config) validateQuotas(w windows.Config) error {
	switch {
	case c.QuotaRefresh <= 0:
		return errors.New("--quota-refresh must be positive")
	case c.QuotaLag < 0:
		return errors.New("--quota-lag must not be negative")
	case c.QuotaReplicas < 1:
		return errors.New("--quota-replicas must be >= 1")
	case c.Quotas && len(w.Specs) == 0:
		return errors.New("--quotas needs windowed usage (--windows): quotas count calls per window")
	}
	return nil
}

// WindowConfig is the windowed usage of --windows and --window-grace.
func (c Config) WindowConfig() (windows.Config, error) {
	specs, err := windows.ParseSpecs(c.Windows)
	if err != nil {
		return windows.Config{}, err
	}
	w := windows.Config{Specs: specs, Grace: c.WindowGrace}
	return w, w.Validate()
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("--log-level: %w", err)
	}
	return l, nil
}

// Logger builds the process logger.
func (c Config) Logger() *slog.Logger {
	level, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

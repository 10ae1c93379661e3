package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/inarious/inarious/internal/alerts"
	"github.com/inarious/inarious/internal/bench/procbench"
	"github.com/inarious/inarious/internal/embedkafka"
	"github.com/inarious/inarious/internal/gcpolicy"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/top"
	"github.com/inarious/inarious/processors/usage"
)

// broker gives each run an empty Kafka: a fresh embedded one, or the given
// cluster with the benchmark's topics deleted.
type broker struct {
	brokers  []string
	version  sarama.KafkaVersion
	embedded *embedkafka.Broker
}

func (b *broker) fresh(ctx context.Context) ([]string, error) {
	if b.embedded != nil {
		b.embedded.Close()
		b.embedded = nil
	}
	if len(b.brokers) > 0 {
		return b.brokers, procbench.ResetTopics(ctx, b.brokers, b.version)
	}
	e, err := embedkafka.Start(0, "")
	if err != nil {
		return nil, err
	}
	b.embedded = e
	return e.Addrs(), nil
}

func (b *broker) close() {
	if b.embedded != nil {
		b.embedded.Close()
	}
}

type commonFlags struct {
	brokers    string
	partitions int
	clients    int
	runs       int
	dir        string
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.brokers, "brokers", "", "Kafka brokers; empty runs a fresh embedded broker per run")
	fs.IntVar(&c.partitions, "partitions", 8, "partitions of Users")
	fs.IntVar(&c.clients, "clients", 10000, "distinct clients")
	fs.IntVar(&c.runs, "runs", 5, "runs; medians are reported")
	fs.StringVar(&c.dir, "dir", "", "where local storage goes: a fresh directory is made in it and removed afterwards; nothing else in it is touched (default: the system's temporary directory)")
}

// setup returns the broker, the configuration and a fresh directory for
// local storage inside --dir; cleanup removes that directory alone, never
// --dir itself, which may hold the user's files.
func (c *commonFlags) setup() (b *broker, cfg kafka.Config, dir string, cleanup func(), err error) {
	cfg = kafka.Defaults()
	cfg.Partitions = c.partitions
	cfg.ClientID = "inarious-bench"
	v, _ := sarama.ParseKafkaVersion(cfg.Version)
	b = &broker{version: v}
	if c.brokers != "" {
		b.brokers = strings.Split(c.brokers, ",")
	}
	dir, remove, err := procbench.WorkDir(c.dir)
	if err != nil {
		return nil, cfg, "", nil, err
	}
	cleanup = func() {
		if err := remove(); err != nil {
			slog.Warn("benchmark directory not removed", "dir", dir, "err", err)
		}
	}
	return b, cfg, dir, cleanup, nil
}

func drain(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("drain", flag.ContinueOnError)
	var c commonFlags
	c.register(fs)
	events := fs.Int("events", 500000, "events to pre-fill and drain")
	baseline := fs.Bool("baseline", true, "also drain with a bare goka counter")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the Inarious drains to this file")
	keyedBy := fs.String("keyed-by", "client", "client: events keyed by client, as the API keys them; server: keyed by one of 16 API server hostnames, as the original service did, so every event is re-keyed")
	span := fs.Duration("event-span", 0, "spread the events' request times over this span ending now (0: all at one time), so windowed buckets close during the drain")
	zipf := fs.Float64("zipf", 0, "draw each event's client from a Zipf distribution with this exponent (> 1, e.g. 1.1) instead of round-robin over the clients")
	producer := fs.String("producer", kafka.Defaults().Producer, "client the worker produces with: sarama or franz")
	queries := fs.Bool("queries", false, "run the worker as with --query-listen: top-clients index of its partitions and joins of the windowed topics")
	services := fs.Int("services", 1, "spread the events uniformly over this many services (the default one, then svc-1, svc-2, ...), so every client calls several")
	spread := fs.Int("spread-endpoints", 0, "spread the events over this many synthetic endpoints (0: five of the API's own), to see the endpoints group's cost with many endpoints")
	withEndpoints := fs.String("endpoints", "no", "no: the usage group alone; yes: the endpoints group (aggregator and table) beside it, as a worker runs both; alternate: one run each way in turn, medians of each")
	alerting := fs.String("alerts", "off", "off: no alert rules; every: rules on every client (usage over 1m at 80/100/200 % of 20 calls, error rate over 1m ≥ 5 %), evaluated on every event; alternate: one run each way in turn, medians of each; quiet-alternate: as alternate with rules no event crosses (the check's cost alone)")
	gcPercent := fs.Int("gc-percent", 0, "Go GC target of the whole bench process, as --gc-percent sets a worker's (0: Go's default of 100); GOGC in the environment wins")
	if err := fs.Parse(args); err != nil {
		return err
	}
	gc := gcpolicy.Apply(*gcPercent, os.Getenv, slog.New(slog.DiscardHandler))
	if *zipf != 0 && (*zipf <= 1 || *keyedBy != "client") {
		return fmt.Errorf("-zipf must be > 1 and needs -keyed-by client")
	}
	var prof *os.File
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		prof = f
	}
	b, cfg, dir, cleanup, err := c.setup()
	if err != nil {
		return err
	}
	defer b.close()
	defer cleanup()
	if *producer != kafka.ProducerSarama && *producer != kafka.ProducerFranz {
		return fmt.Errorf("-producer must be %s or %s, not %q", kafka.ProducerSarama, kafka.ProducerFranz, *producer)
	}
	cfg.Producer = *producer
	if !slices.Contains([]string{"no", "yes", "alternate"}, *withEndpoints) {
		return fmt.Errorf("-endpoints must be no, yes or alternate, not %q", *withEndpoints)
	}
	if !slices.Contains([]string{"off", "every", "alternate", "quiet-alternate"}, *alerting) {
		return fmt.Errorf("-alerts must be off, every, alternate or quiet-alternate, not %q", *alerting)
	}
	alternating := *alerting == "alternate" || *alerting == "quiet-alternate"
	if *keyedBy != "client" && *keyedBy != "server" {
		return fmt.Errorf("-keyed-by must be client or server, not %q", *keyedBy)
	}
	fmt.Printf("drain: %d events, %d clients, %d partitions, %d runs, keyed by %s, broker=%s, event span %v\n", *events, c.clients, c.partitions, c.runs, *keyedBy, orEmbedded(c.brokers), *span)
	if *zipf != 0 {
		fmt.Printf("clients drawn from Zipf s=%v; worker produces with %s\n", *zipf, *producer)
	} else {
		fmt.Printf("clients round-robin (uniform); worker produces with %s\n", *producer)
	}
	if *services > 1 {
		fmt.Printf("events spread over %d services\n", *services)
	}
	if *queries {
		fmt.Println("worker serves queries: top-clients index and windowed joins on")
	}
	fmt.Printf("GC target %d %% for both drains (from GOGC: %v)\n", gc.GCPercent, gc.FromEnv)
	var ours, base, oursCPU, baseCPU []float64
	two := map[bool]*variant{false: {name: "usage group alone"}, true: {name: "usage and endpoints groups"}}
	withRules := map[bool]*variant{false: {name: "without alert rules"}, true: {name: "with alert rules on every client"}}
	for run := 0; run < c.runs; run++ {
		both := *withEndpoints == "yes" || *withEndpoints == "alternate" && run%2 == 1
		rules := *alerting == "every" || alternating && run%2 == 1
		brokers, err := b.fresh(ctx)
		if err != nil {
			return err
		}
		cfg.Brokers = brokers
		if err := cfg.EnsureTopics(ctx, append(usage.Topics(), alerts.Topics()...)...); err != nil {
			return err
		}
		load := procbench.Load{Events: *events, Clients: c.clients, Zipf: *zipf, Span: *span, Endpoints: *spread, Services: *services}
		if *keyedBy == "server" {
			load.Servers = 16
		}
		if err := procbench.Prefill(ctx, brokers, load); err != nil {
			return err
		}
		// Alternate who goes first so neither always gets a warm page cache.
		order := []string{"inarious", "baseline"}
		if run%2 == 1 {
			order = []string{"baseline", "inarious"}
		}
		for _, who := range order {
			if who == "baseline" && !*baseline {
				continue
			}
			sub := filepath.Join(dir, fmt.Sprintf("%s-%d", who, run))
			var r procbench.DrainResult
			if who == "inarious" {
				if prof != nil {
					_ = pprof.StartCPUProfile(prof)
				}
				var opts []usage.Option
				if *queries {
					opts = append(opts, usage.WithTopIndex(top.New()), usage.WithWindowJoins())
				}
				if rules {
					opts = append(opts, usage.WithAlerts(alerts.NewEvaluator(benchRules(*alerting == "quiet-alternate"))))
				}
				if both {
					r, err = procbench.DrainWithEndpoints(ctx, cfg, sub, *events, opts...)
				} else {
					r, err = procbench.DrainInarious(ctx, cfg, sub, *events, opts...)
				}
				if prof != nil {
					pprof.StopCPUProfile()
					prof = nil // one profile: the first run
				}
				ours = append(ours, r.Rate())
				oursCPU = append(oursCPU, us(r.CPUPerEvent()))
				if err == nil {
					byTopic, werr := procbench.RecordsWritten(cfg)
					if werr != nil {
						return werr
					}
					var written, ofEndpoints int64
					for t, n := range byTopic {
						written += n
						if strings.HasPrefix(t, "endpoints-") {
							ofEndpoints += n
						}
					}
					w := withRules[rules]
					w.rate, w.cpu = append(w.rate, r.Rate()), append(w.cpu, us(r.CPUPerEvent()))
					w.perEvent = append(w.perEvent, float64(byTopic[string(alerts.Topic)]))
					v := two[both]
					v.rate, v.cpu = append(v.rate, r.Rate()), append(v.cpu, us(r.CPUPerEvent()))
					v.perEvent = append(v.perEvent, float64(written)/float64(*events))
					v.endpointsPerEvent = append(v.endpointsPerEvent, float64(ofEndpoints)/float64(*events))
					fmt.Printf("run %d %s: %d records written to Kafka besides Users, %.4f per event (endpoints group: partials %d, table %d, %.4f per event)\n",
						run+1, v.name, written, float64(written)/float64(*events), byTopic["endpoints-partials"], byTopic["endpoints-table"], float64(ofEndpoints)/float64(*events))
				}
			} else {
				r, err = procbench.DrainBaseline(ctx, brokers, b.version, sub, *events)
				base = append(base, r.Rate())
				baseCPU = append(baseCPU, us(r.CPUPerEvent()))
			}
			if err != nil {
				return fmt.Errorf("%s run %d: %w", who, run, err)
			}
			fmt.Printf("run %d %-9s startup %7.0f ms  drain %7.0f ms  %9.0f events/s  %6.2f µs CPU/event  %d buckets emitted\n", run+1, who, ms(r.Startup), ms(r.Drain), r.Rate(), us(r.CPUPerEvent()), r.Emitted)
		}
	}
	fmt.Printf("median inarious %9.0f events/s  %6.2f µs CPU/event\n", median(ours), median(oursCPU))
	if *withEndpoints == "alternate" {
		for _, v := range []*variant{two[false], two[true]} {
			fmt.Printf("median %-27s %9.0f events/s  %6.2f µs CPU/event  %.4f records/event, %.5f of them the endpoints group's (%d runs)\n",
				v.name, median(v.rate), median(v.cpu), median(v.perEvent), median(v.endpointsPerEvent), len(v.rate))
		}
		fmt.Printf("ratio two groups/one: throughput %.2f, CPU per event %.2f\n", median(two[true].rate)/median(two[false].rate), median(two[true].cpu)/median(two[false].cpu))
	}
	if alternating {
		for _, v := range []*variant{withRules[false], withRules[true]} {
			fmt.Printf("median %-32s %9.0f events/s  %6.2f µs CPU/event  %.0f alerts emitted (%d runs)\n",
				v.name, median(v.rate), median(v.cpu), median(v.perEvent), len(v.rate))
		}
		fmt.Printf("ratio with rules/without: throughput %.2f, CPU per event %.2f\n", median(withRules[true].rate)/median(withRules[false].rate), median(withRules[true].cpu)/median(withRules[false].cpu))
	}
	if len(base) > 0 {
		fmt.Printf("median baseline %9.0f events/s  %6.2f µs CPU/event\n", median(base), median(baseCPU))
		fmt.Printf("ratio inarious/baseline: throughput %.2f, CPU per event %.2f\n", median(ours)/median(base), median(oursCPU)/median(baseCPU))
	}
	return nil
}

// benchRules are alert rules on every client, so every event is evaluated:
// the worst case for the usage group's hot path. Quiet ones are never
// crossed: what is left is the check itself.
func benchRules(quiet bool) *alerts.Rules {
	limit, errorRate, minCalls := uint64(20), 5.0, uint64(10)
	if quiet {
		limit, errorRate, minCalls = 1<<40, 100, 1<<40
	}
	r := alerts.NewRules()
	r.Set(alerts.Rule{Name: "bench-usage", Kind: alerts.ClientUsage, Client: alerts.Any, Window: "1m", Limit: limit, Thresholds: []float64{80, 100, 200}})
	r.Set(alerts.Rule{Name: "bench-errors", Kind: alerts.ClientErrorRate, Client: alerts.Any, Window: "1m", Thresholds: []float64{errorRate}, MinCalls: minCalls})
	return r
}

func orEmbedded(s string) string {
	if s == "" {
		return "embedded"
	}
	return s
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// variant is one set of groups drained: its runs' rates, CPU per event and
// Kafka records written per event.
type variant struct {
	name                string
	rate, cpu, perEvent []float64
	// endpointsPerEvent is the share of perEvent in the endpoints topics.
	endpointsPerEvent []float64
}

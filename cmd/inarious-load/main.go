// Command inarious-load drives a running Inarious over HTTP and reports
// throughput, latency percentiles and freshness (see package loadgen).
//
//	inarious-load --target http://127.0.0.1:8080 --mix usage-get --connections 64 --duration 10s
//	inarious-load --mix otlp --gzip --probe-every 0          # spans/s into POST /v1/traces
//	inarious-load --mix otlp --batch 10 --rate 100 --probe-every 1  # export to count, 1,000 spans/s
//
// The target must trust this host's X-Forwarded-For (--trusted-proxies 127.0.0.1).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/inarious/inarious/internal/bench/loadgen"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "inarious-load:", err)
		}
		os.Exit(2)
	}
}

func run(args []string) error {
	cfg := loadgen.Defaults()
	fs := flag.NewFlagSet("inarious-load", flag.ContinueOnError)
	mix := cfg.Mix.String()
	asJSON := false
	fs.StringVar(&cfg.Target, "target", cfg.Target, "base URL of the Inarious API")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "distinct client identities, sent as X-Forwarded-For")
	fs.IntVar(&cfg.Endpoints, "endpoints", cfg.Endpoints, "synthetic endpoints endpoint-get reads (inarious-bench fill -endpoints)")
	fs.IntVar(&cfg.Connections, "connections", cfg.Connections, "keep-alive connections, one worker each")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "open-loop target in requests/s, latency from the intended send time; 0 = closed loop, flat out")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "length of the run (always bounded)")
	fs.Int64Var(&cfg.Requests, "requests", cfg.Requests, "stop after this many requests (0 = only --duration)")
	fs.StringVar(&mix, "mix", mix, "usage-get, usage-list (GET /usage?limit=50), healthz, users-create, users-crud, endpoint-get (GET /endpoints/{endpoint}), endpoint-list (GET /endpoints?order=p99&limit=50), otlp (POST /v1/traces, protobuf), events (POST /events, JSON), mixed, or weighted: usage-get:8,users-create:2")
	fs.IntVar(&cfg.Batch, "batch", cfg.Batch, fmt.Sprintf("spans (otlp) or events (events) per request; 0 = %d spans, %d events", loadgen.DefaultOTLPBatch, loadgen.DefaultEventsBatch))
	fs.BoolVar(&cfg.Gzip, "gzip", cfg.Gzip, "gzip the otlp and events bodies")
	fs.IntVar(&cfg.ProbeEvery, "probe-every", cfg.ProbeEvery, "every Nth request is a freshness probe (0 = no freshness)")
	fs.IntVar(&cfg.ProbeClients, "probe-clients", cfg.ProbeClients, "probe identities (each has one probe in flight)")
	fs.DurationVar(&cfg.PollInterval, "poll-interval", cfg.PollInterval, "how often a probe's usage is read until it shows")
	fs.DurationVar(&cfg.FreshnessTimeout, "freshness-timeout", cfg.FreshnessTimeout, "a probe not visible by then counts as timed out")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "per-request timeout")
	fs.BoolVar(&cfg.Warmup, "warmup", cfg.Warmup, "before a run with usage-get, make the clients exist and wait until they show")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of identities and choices (0 = random)")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var err error
	if cfg.Mix, err = loadgen.ParseMix(mix); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if asJSON {
		return rep.WriteJSON(os.Stdout)
	}
	return rep.WriteText(os.Stdout)
}

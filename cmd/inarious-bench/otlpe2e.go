package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/inarious/inarious/internal/bench/loadgen"
)

// otlpE2E measures how long after an OTLP export its spans are counted in
// GET /usage/{client}: exports of -batch server spans at -spans per second
// (open loop); every -probe-every'th export's spans are all one probe
// client's, whose usage is polled until it counts them all (the other
// exports' clients are not polled: polling every export would load the API
// more than the spans do). It is inarious-load's freshness with the otlp
// scenario, timed from each export's intended send.
func otlpE2E(ctx context.Context, args []string) error {
	cfg := loadgen.Defaults()
	fs := flag.NewFlagSet("otlp-e2e", flag.ContinueOnError)
	spans := fs.Float64("spans", 1000, "spans per second")
	fs.StringVar(&cfg.Target, "target", cfg.Target, "base URL of the Inarious API (with a worker counting)")
	fs.IntVar(&cfg.Batch, "batch", 10, "spans per export")
	fs.BoolVar(&cfg.Gzip, "gzip", false, "gzip the exports")
	fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "length of the run")
	// Every poll is an API call the API records as an event itself: at
	// 1 ms, 16 waiting probes made 16,000 events/s, so a slower path drew
	// more load on itself. 5 ms overstates a latency by 2.5 ms on average.
	cfg.PollInterval = 5 * time.Millisecond
	fs.DurationVar(&cfg.PollInterval, "poll-interval", cfg.PollInterval, "how often a probe's usage is read until it shows")
	fs.IntVar(&cfg.ProbeEvery, "probe-every", 5, "every Nth export is timed")
	fs.IntVar(&cfg.ProbeClients, "probe-clients", cfg.ProbeClients, "probe identities (each has one export in flight)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *spans <= 0 || cfg.Batch <= 0 || cfg.ProbeEvery <= 0 {
		return errors.New("-spans, -batch and -probe-every must be > 0")
	}
	cfg.Mix = loadgen.Mix{{Scenario: loadgen.OTLP, Weight: 1}}
	cfg.Rate = *spans / float64(cfg.Batch)
	cfg.Connections, cfg.Warmup = 16, false
	rep, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if err := rep.WriteText(os.Stdout); err != nil {
		return err
	}
	f := rep.Freshness
	if f.Skipped > 0 || f.TimedOut > 0 || f.Failed > 0 {
		fmt.Printf("WARNING: %d exports not timed (every probe identity busy), %d not counted in time, %d failed\n", f.Skipped, f.TimedOut, f.Failed)
	}
	fmt.Printf("export to count: p50 %.2f ms  p99 %.2f ms  (%d exports of %d spans, %.0f spans/s)\n",
		f.Seen.P50, f.Seen.P99, f.Seen.Count, cfg.Batch, rep.ItemThroughput)
	return nil
}

package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/inarious/inarious/internal/bench/procbench"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/processors/endpoints"
	"github.com/inarious/inarious/processors/usage"
)

// fill writes one activity event for each of -clients distinct clients to
// the Users topic of a running Kafka (or Inarious' embedded broker), keyed
// by client and partitioned with murmur2 as the API's emitter does, so a
// table of any size can be built for measurements.
func fill(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("fill", flag.ContinueOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "Kafka brokers, comma-separated")
	clients := fs.Int("clients", 1_000_000, "distinct clients, one event each")
	from := fs.Int("from", 0, "first client number: fill again from where a previous fill stopped to grow the table")
	partitions := fs.Int("partitions", 8, "partitions of Users and the usage table, when this creates them")
	perClient := fs.Int("per-client", 1, "events per client (more than 1 needs -from 0)")
	nEndpoints := fs.Int("endpoints", 0, "spread the events over this many synthetic endpoints, GET /bench/00000 on (0: five of the API's own)")
	span := fs.Duration("span", 0, "spread the request times over this span ending now, so windowed buckets of the past are built (0: all now)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *clients < 1 || *from < 0 || *from+*clients > procbench.MaxClients {
		return fmt.Errorf("-from + -clients must be from 1 to %d", procbench.MaxClients)
	}
	if *perClient < 1 || (*perClient > 1 && *from != 0) || *span < 0 {
		return fmt.Errorf("-per-client must be >= 1 (and -from 0 when > 1), -span >= 0")
	}
	cfg := kafka.Defaults()
	cfg.Brokers = strings.Split(*brokers, ",")
	cfg.Partitions = *partitions
	cfg.ClientID = "inarious-bench"
	if err := cfg.EnsureTopics(ctx, append(usage.Topics(), endpoints.Topics()...)...); err != nil {
		return err
	}
	start := time.Now()
	events := *clients * *perClient
	var err error
	if *perClient == 1 && *span == 0 && *nEndpoints == 0 {
		err = procbench.PrefillRange(ctx, cfg.Brokers, *from, *from+*clients)
	} else {
		// Round robin over the clients, request times spread over the span.
		err = procbench.Prefill(ctx, cfg.Brokers, procbench.Load{Events: events, Clients: *clients, Span: *span, Endpoints: *nEndpoints})
	}
	if err != nil {
		return err
	}
	took := time.Since(start)
	fmt.Printf("fill: %d events for %d clients (%s … %s) over %v in %.1f s, %.0f events/s\n", events, *clients,
		procbench.ClientName(*from), procbench.ClientName(*from+*clients-1), *span, took.Seconds(), float64(events)/took.Seconds())
	return nil
}

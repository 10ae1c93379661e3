package main

import (
	"github.com/inarious/inarious/processors/usage"

	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/inarious/inarious/internal/bench/procbench"
	"github.com/inarious/inarious/internal/kafka"
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
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *clients < 1 || *from < 0 || *from+*clients > procbench.MaxClients {
		return fmt.Errorf("-from + -clients must be from 1 to %d", procbench.MaxClients)
	}
	cfg := kafka.Defaults()
	cfg.Brokers = strings.Split(*brokers, ",")
	cfg.Partitions = *partitions
	cfg.ClientID = "inarious-bench"
	if err := cfg.EnsureTopics(ctx, usage.Topics()...); err != nil {
		return err
	}
	start := time.Now()
	if err := procbench.PrefillRange(ctx, cfg.Brokers, *from, *from+*clients); err != nil {
		return err
	}
	took := time.Since(start)
	fmt.Printf("fill: %d clients (%s … %s) in %.1f s, %.0f events/s\n", *clients,
		procbench.ClientName(*from), procbench.ClientName(*from+*clients-1), took.Seconds(), float64(*clients)/took.Seconds())
	return nil
}

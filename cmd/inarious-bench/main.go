// Command inarious-bench measures the usage worker: how fast it drains a
// pre-filled Users topic next to a bare goka counter, and how fast it
// recovers a large table; fill builds a large table on a running system;
// bare-router is the floor the API's cost per request is compared with;
// otlp-e2e times an OTLP export to its spans' count; txn times the Kafka
// transactions the dedupe stage runs. See BENCHMARKS.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: inarious-bench drain|recovery|memory|fill|bare-router|otlp-e2e|txn [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "drain":
		err = drain(ctx, os.Args[2:])
	case "recovery":
		err = recovery(ctx, os.Args[2:])
	case "memory":
		err = memory(ctx, os.Args[2:])
	case "fill":
		err = fill(ctx, os.Args[2:])
	case "bare-router":
		err = bareRouter(ctx, os.Args[2:])
	case "otlp-e2e":
		err = otlpE2E(ctx, os.Args[2:])
	case "txn":
		err = txnBench(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown benchmark %q", os.Args[1])
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "inarious-bench:", err)
		os.Exit(1)
	}
}

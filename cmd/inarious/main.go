// Command inarious runs Inarious: `inarious` (everything in one process on an
// embedded broker), `inarious api`, or `inarious worker`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/inarious/inarious/internal/app"
	"github.com/inarious/inarious/internal/gcpolicy"
)

const usage = `usage: inarious [api|worker] [flags]

  (none)  API, worker and, unless --brokers is set, an embedded Kafka broker
  api     the HTTP API: emits activity events, serves usage from a view
  worker  one member of the usage processor group

Every flag can also be set as INARIOUS_<FLAG> (e.g. INARIOUS_BROKERS).
Run "inarious [api|worker] -h" for the flags.
`

func main() {
	if err := run(os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "inarious:", err)
		}
		os.Exit(2)
	}
}

func run(args []string) error {
	mode := ""
	if len(args) > 0 && (args[0] == "api" || args[0] == "worker") {
		mode, args = args[0], args[1:]
	} else if len(args) > 0 && (args[0] == "help" || args[0] == "--help") {
		fmt.Print(usage)
		return nil
	}
	cfg, err := app.Parse("inarious "+mode, args, os.Getenv)
	if err != nil {
		return err
	}
	log := cfg.Logger()
	gcpolicy.Apply(cfg.GCPercent, os.Getenv, log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch mode {
	case "api":
		err = app.RunAPI(ctx, cfg, log, nil)
	case "worker":
		err = app.RunWorker(ctx, cfg, log)
	default:
		err = app.RunAll(ctx, cfg, log, nil)
	}
	if err != nil {
		log.Error("stopped with error", "err", err)
		return err
	}
	return nil
}

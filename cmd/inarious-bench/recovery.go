package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/inarious/inarious/internal/bench/procbench"
	"github.com/inarious/inarious/processors/usage"
)

// recovery builds a table of --clients clients (one event each), then times
// a worker and the API's view getting ready: warm (local storage kept) and
// cold (storage wiped, rebuilt from the changelog alone). The view is timed
// with its top-clients index and, beside it, without.
func recovery(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("recovery", flag.ContinueOnError)
	var c commonFlags
	c.register(fs)
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the first run of -profile-step to this file")
	profileStep := fs.String("profile-step", "view cold", "the step -cpuprofile profiles")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, cfg, dir, cleanup, err := c.setup()
	if err != nil {
		return err
	}
	defer b.close()
	defer cleanup()
	brokers, err := b.fresh(ctx)
	if err != nil {
		return err
	}
	cfg.Brokers = brokers
	if err := cfg.EnsureTopics(ctx, usage.Topics()...); err != nil {
		return err
	}
	fmt.Printf("recovery: %d clients, %d partitions, %d runs, broker=%s\n", c.clients, c.partitions, c.runs, orEmbedded(c.brokers))
	start := time.Now()
	if err := procbench.Prefill(ctx, brokers, procbench.Load{Events: c.clients, Clients: c.clients}); err != nil {
		return err
	}
	workerDir, viewDir, plainDir := filepath.Join(dir, "worker"), filepath.Join(dir, "view"), filepath.Join(dir, "view-plain")
	r, err := procbench.DrainInarious(ctx, cfg, workerDir, c.clients)
	if err != nil {
		return err
	}
	size, err := procbench.TableSize(cfg)
	if err != nil {
		return err
	}
	fmt.Printf("table built in %.1f s (%0.f events/s); changelog holds %d records\n", time.Since(start).Seconds(), r.Rate(), size)
	if _, err := procbench.ViewReady(ctx, cfg, viewDir); err != nil { // first load of the view's storage
		return err
	}
	if _, err := procbench.ViewReadyWithoutIndex(ctx, cfg, plainDir); err != nil {
		return err
	}

	// CPU is the whole process's (the embedded broker's too): on a shared
	// machine it says more about cost than wall time does.
	var res, cpus = map[string][]float64{}, map[string][]float64{}
	for run := 0; run < c.runs; run++ {
		for _, step := range []struct {
			name string
			dir  string
			wipe bool
			fn   func(context.Context, string) (time.Duration, error)
		}{
			{"worker warm", workerDir, false, func(ctx context.Context, d string) (time.Duration, error) { return procbench.WorkerReady(ctx, cfg, d) }},
			{"view warm", viewDir, false, func(ctx context.Context, d string) (time.Duration, error) { return procbench.ViewReady(ctx, cfg, d) }},
			{"plain warm", plainDir, false, func(ctx context.Context, d string) (time.Duration, error) {
				return procbench.ViewReadyWithoutIndex(ctx, cfg, d)
			}},
			{"worker cold", workerDir, true, func(ctx context.Context, d string) (time.Duration, error) { return procbench.WorkerReady(ctx, cfg, d) }},
			{"view cold", viewDir, true, func(ctx context.Context, d string) (time.Duration, error) { return procbench.ViewReady(ctx, cfg, d) }},
			{"plain cold", plainDir, true, func(ctx context.Context, d string) (time.Duration, error) {
				return procbench.ViewReadyWithoutIndex(ctx, cfg, d)
			}},
		} {
			if step.wipe {
				if err := os.RemoveAll(step.dir); err != nil {
					return err
				}
			}
			profiling := *cpuProfile != "" && run == 0 && step.name == *profileStep
			if profiling {
				f, err := os.Create(*cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
			}
			cpu0 := processCPU()
			took, err := step.fn(ctx, step.dir)
			cpu := processCPU() - cpu0
			if profiling {
				pprof.StopCPUProfile()
			}
			if err != nil {
				return fmt.Errorf("%s: %w", step.name, err)
			}
			res[step.name] = append(res[step.name], ms(took))
			cpus[step.name] = append(cpus[step.name], ms(cpu))
			fmt.Printf("run %d %-12s ready in %8.0f ms  CPU %8.0f ms\n", run+1, step.name, ms(took), ms(cpu))
		}
	}
	// "view" has the top-clients index, "plain" is the same view without it.
	for _, k := range []string{"worker warm", "worker cold", "view warm", "plain warm", "view cold", "plain cold"} {
		fmt.Printf("median %-12s %8.0f ms  CPU %8.0f ms\n", k, median(res[k]), median(cpus[k]))
	}
	return nil
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

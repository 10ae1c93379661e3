//go:build loadprofile

package loadgen_test

// A profiling harness: Inarious (app.RunAll on the embedded broker) and the
// load generator in one process, with a CPU profile of the load phase. The
// binary has no pprof endpoint, so this is how the server is profiled under
// load. The load generator's goroutines carry the pprof label
// loadgen=client; drop them with -tagignore to see the server alone:
//
//	LOADPROFILE_MIX=usage-get LOADPROFILE_CONNECTIONS=64 LOADPROFILE_OUT=/tmp/usage.prof \
//	  go test -tags loadprofile -run TestProfileServer -count=1 -timeout 5m -v ./loadgen/
//	go tool pprof -tagignore loadgen=client -top /tmp/usage.prof
//
// Settings (environment): LOADPROFILE_MIX [usage-get], LOADPROFILE_CONNECTIONS [64],
// LOADPROFILE_CLIENTS [1000], LOADPROFILE_RATE [0], LOADPROFILE_DURATION [10s],
// LOADPROFILE_OUT [cpu.prof in the test's temp dir].

import (
	"context"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/app"
	"github.com/inarious/inarious/internal/app/apptest"
	"github.com/inarious/inarious/internal/bench/loadgen"
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func TestProfileServer(t *testing.T) {
	base := apptest.Start(t, nil, func(c *app.Config) { c.LogLevel = "warn" }).Base
	ctx := context.Background()

	lc := loadgen.Defaults()
	lc.Target = base
	var err error
	if lc.Mix, err = loadgen.ParseMix(env("LOADPROFILE_MIX", "usage-get")); err != nil {
		t.Fatal(err)
	}
	if lc.Connections, err = strconv.Atoi(env("LOADPROFILE_CONNECTIONS", "64")); err != nil {
		t.Fatal(err)
	}
	if lc.Clients, err = strconv.Atoi(env("LOADPROFILE_CLIENTS", "1000")); err != nil {
		t.Fatal(err)
	}
	if lc.Rate, err = strconv.ParseFloat(env("LOADPROFILE_RATE", "0"), 64); err != nil {
		t.Fatal(err)
	}
	if lc.Duration, err = time.ParseDuration(env("LOADPROFILE_DURATION", "10s")); err != nil {
		t.Fatal(err)
	}
	lc.ProbeEvery = 0
	out := env("LOADPROFILE_OUT", t.TempDir()+"/cpu.prof")

	// Warm up (clients exist, connections open) outside the profile.
	warm := lc
	warm.Duration = time.Second
	if _, err := loadgen.Run(ctx, warm); err != nil {
		t.Fatal(err)
	}
	lc.Warmup = false

	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	var rep *loadgen.Report
	pprof.Do(ctx, pprof.Labels("loadgen", "client"), func(ctx context.Context) {
		rep, err = loadgen.Run(ctx, lc)
	})
	pprof.StopCPUProfile()
	if err != nil {
		t.Fatal(err)
	}
	_ = rep.WriteText(os.Stdout)
	t.Logf("CPU profile: %s (go tool pprof -tagignore loadgen=client -top %s)", out, out)
	if heap := os.Getenv("LOADPROFILE_HEAP"); heap != "" {
		runtime.GC()
		hf, err := os.Create(heap)
		if err != nil {
			t.Fatal(err)
		}
		defer hf.Close()
		if err := pprof.WriteHeapProfile(hf); err != nil {
			t.Fatal(err)
		}
		t.Logf("heap profile: %s (go tool pprof -sample_index=inuse_space -top %s)", heap, heap)
	}
}

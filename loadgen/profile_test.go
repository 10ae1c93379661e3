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
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/inarious/inarious/app"
	"github.com/inarious/inarious/loadgen"
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func TestProfileServer(t *testing.T) {
	cfg := app.Defaults()
	cfg.EmbeddedKafkaPort = 0
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.TrustedProxies = "127.0.0.1"
	cfg.LogLevel = "warn"
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() { done <- app.RunAll(ctx, cfg, log, func(a string) { addr <- a }) }()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case err := <-done:
		t.Fatalf("inarious did not start: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("inarious did not start in 60s")
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("inarious stopped with: %v", err)
		}
	}()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("inarious not ready in 60s")
		}
	}

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
}

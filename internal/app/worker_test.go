package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/app"
	"github.com/inarious/inarious/internal/app/apptest"
	"github.com/inarious/inarious/internal/bench/procbench"
	"github.com/inarious/inarious/internal/embedkafka"
	"github.com/inarious/inarious/internal/testutil"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

var processedRe = regexp.MustCompile(`(?m)^inarious_usage_events_processed_total (\d+)$`)

// A worker process on its own serves its counters on --metrics-listen.
func TestWorkerServesMetrics(t *testing.T) {
	b, err := embedkafka.Start(0, "")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cfg := app.Defaults()
	cfg.Kafka.Brokers = b.Addrs()
	cfg.Kafka.Partitions = 2
	cfg.DataDir = t.TempDir()
	cfg.MetricsListen = freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.RunWorker(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	}()
	base := "http://" + cfg.MetricsListen
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		code := apptest.Status(base + "/healthz")
		return code == http.StatusOK, fmt.Sprintf("worker /healthz = %d, want 200", code)
	})

	const events = 25
	if err := procbench.PrefillRange(ctx, b.Addrs(), 0, events); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			return false, fmt.Sprintf("GET /metrics: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		m := processedRe.FindSubmatch(body)
		if m == nil {
			return false, "no processed_total in /metrics"
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n == events, fmt.Sprintf("processed_total = %d, want %d", n, events)
	})
}

// Package apptest runs the whole of Inarious in-process on the embedded
// broker for tests.
package apptest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/app"
	"github.com/inarious/inarious/internal/testutil"
)

// StartTimeout bounds how long the system may take to be ready.
const StartTimeout = 60 * time.Second

// System is a running all-in-one Inarious.
type System struct {
	// Base is the API's URL, e.g. http://127.0.0.1:41234.
	Base string
	// Addr is the API's host:port.
	Addr string
	// Config is what the system runs with.
	Config app.Config

	t       testing.TB
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

// Option changes the test configuration before the system starts.
type Option func(*app.Config)

// WithDataDir keeps data in dir, e.g. to start again on the same data.
func WithDataDir(dir string) Option { return func(c *app.Config) { c.DataDir = dir } }

// Start runs Inarious (embedded broker on a free port, API on a free port,
// 127.0.0.1 as a trusted proxy, data in a temporary directory, logs
// discarded unless log is set) and returns once /readyz answers 200. It is
// stopped when the test ends, or earlier with Stop.
func Start(t testing.TB, log *slog.Logger, opts ...Option) *System {
	t.Helper()
	s := StartListening(t, log, opts...)
	testutil.Eventually(t, StartTimeout, func() (bool, string) {
		code := Status(s.Base + "/readyz")
		return code == http.StatusOK, fmt.Sprintf("/readyz = %d, want 200", code)
	})
	return s
}

// StartListening is Start returning as soon as the API listens, ready or not
// (e.g. while a dependency it waits for is away).
func StartListening(t testing.TB, log *slog.Logger, opts ...Option) *System {
	t.Helper()
	cfg := app.Defaults()
	cfg.EmbeddedKafkaPort = 0
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.TrustedProxies = "127.0.0.1"
	cfg.Kafka.Partitions = 4
	for _, o := range opts {
		o(&cfg)
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &System{Config: cfg, t: t, cancel: cancel, done: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() { s.done <- app.RunAll(ctx, cfg, log, func(a string) { addr <- a }) }()
	select {
	case s.Addr = <-addr:
		s.Base = "http://" + s.Addr
	case err := <-s.done:
		cancel()
		t.Fatalf("system did not start: %v", err)
	case <-time.After(StartTimeout):
		cancel()
		t.Fatalf("system did not start in %v", StartTimeout)
	}
	t.Cleanup(s.Stop)
	return s
}

// Stop shuts the system down as SIGTERM would and reports an unclean stop.
func (s *System) Stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	s.cancel()
	if err := <-s.done; err != nil {
		s.t.Errorf("system stopped with: %v", err)
	}
}

// Status GETs url and returns the status code, 0 when the request failed.
func Status(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

package api_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/internal/metrics"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/internal/users/boltstore"
	"github.com/inarious/inarious/internal/users/userhttp"
)

// statusWriter is a testutil.DiscardWriter that keeps the last status, so the
// benchmark can check that every POST was a 201.
type statusWriter struct {
	testutil.DiscardWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) { s.status = code }

// postUsersServer is the API with the users routes on a bbolt store in a
// temp dir, both closed when b ends.
func postUsersServer(b *testing.B) (*api.Server, *boltstore.Store) {
	store, err := boltstore.Open(filepath.Join(b.TempDir(), "users.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Close() })
	pub := api.NewEventPublisher(&testutil.EncodingTransport{}, 1<<16, api.ProduceOnPublish())
	b.Cleanup(func() { _ = pub.Close(context.Background()) })
	cr, err := api.NewClientResolver(nil)
	if err != nil {
		b.Fatal(err)
	}
	srv, err := newAPI(fakeUsage{}, pub, cr,
		api.WithMiddleware(metrics.New().Middleware),
		api.WithRoutes(userhttp.Routes(store)...))
	if err != nil {
		b.Fatal(err)
	}
	return srv, store
}

// BenchmarkPostUsers is the handler chain of POST /users (router, activity
// and metrics middleware, auth off, userhttp's create) on a real bbolt store
// in a temp dir, a new user per request, as scripts/post-users.lua sends.
// With -cpu 1 its 32 parallel creators are wrk -c32 against the pinned
// server, minus net/http; each create waits for its group's fsyncs, so
// ns/op is wall time per create on one core and the CPU profile shows where
// the server's CPU per POST goes.
func BenchmarkPostUsers(b *testing.B) {
	srv, store := postUsersServer(b)
	var next atomic.Int64
	cpu0 := processCPU(b)
	b.SetParallelism(32) // × GOMAXPROCS (1 with -cpu 1) = wrk's 32 connections
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var body bytes.Reader
		req := httptest.NewRequest(http.MethodPost, "/users", nil)
		req.RemoteAddr = "127.0.0.1:40000"
		req.Header.Set("Content-Type", "application/json")
		w := &statusWriter{DiscardWriter: *testutil.NewDiscardWriter()}
		buf := make([]byte, 0, 128)
		for pb.Next() {
			n := next.Add(1)
			buf = fmt.Appendf(buf[:0], `{"name":"User %d","email":"u%d-bench@example.com"}`, n, n)
			body.Reset(buf)
			req.Body = io.NopCloser(&body)
			req.ContentLength = int64(len(buf))
			srv.ServeHTTP(w, req)
			if w.status != http.StatusCreated {
				b.Errorf("POST /users: status %d, want 201", w.status)
				return
			}
		}
	})
	reportPostUsers(b, store, cpu0)
}

// reportPostUsers reports the CPU per POST since cpu0 and how many writes
// each bbolt commit held.
func reportPostUsers(b *testing.B, store *boltstore.Store, cpu0 time.Duration) {
	b.ReportMetric(float64(processCPU(b)-cpu0)/float64(b.N), "cpu-ns/op")
	st := store.Stats()
	b.ReportMetric(float64(st.Writes)/float64(st.Commits), "writes/commit")
}

// processCPU is the process's user+system CPU time so far: with -cpu 1 the
// benchmark's cpu-ns/op is the figure scripts/api-cost.sh reports per request.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPostUsersLoopback is BenchmarkPostUsers through net/http on a
// loopback socket, 32 keep-alive connections, client in the same process
// (so cpu-ns/op counts the client too). Its point is the group commit
// (writes/commit): handlers wake from the network poller, as they do under
// wrk, not straight from the committer's acknowledgement.
func BenchmarkPostUsersLoopback(b *testing.B) {
	srv, store := postUsersServer(b)
	ts := httptest.NewServer(srv)
	defer ts.Close()
	addr := ts.Listener.Addr().String()
	var next atomic.Int64
	cpu0 := processCPU(b)
	b.SetParallelism(32)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		var req, body []byte
		for pb.Next() {
			n := next.Add(1)
			body = fmt.Appendf(body[:0], `{"name":"User %d","email":"u%d-bench@example.com"}`, n, n)
			req = fmt.Appendf(req[:0], "POST /users HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
			if _, err := conn.Write(req); err != nil {
				b.Error(err)
				return
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				b.Errorf("POST /users: status %d, want 201", resp.StatusCode)
				return
			}
		}
	})
	reportPostUsers(b, store, cpu0)
}

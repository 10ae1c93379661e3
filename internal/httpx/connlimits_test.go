package httpx_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/httpx"
)

const (
	requestLimit = 200 * time.Millisecond
	idleLimit    = 300 * time.Millisecond
	sweepTick    = 20 * time.Millisecond
)

// serveLimited serves h behind ConnLimits and returns its address and the
// number of ConnState calls the server's own hook saw.
func serveLimited(t *testing.T, h http.Handler) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var states atomic.Int64
	srv := &http.Server{Handler: h, ReadHeaderTimeout: time.Second,
		ConnState: func(net.Conn, http.ConnState) { states.Add(1) }}
	limits := &httpx.ConnLimits{Request: requestLimit, Idle: idleLimit, Tick: sweepTick}
	limits.Install(srv)
	ctx, cancel := context.WithCancel(context.Background())
	go limits.Run(ctx)
	go func() { _ = srv.Serve(limits.Listener(ln)) }()
	t.Cleanup(func() {
		_ = srv.Close()
		cancel()
	})
	return ln.Addr().String(), &states
}

// closedAfter reads from c until the server closes it, and reports how long
// that took from start.
func closedAfter(t *testing.T, c net.Conn, start time.Time) time.Duration {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, c)
	if err != nil {
		t.Fatalf("connection not closed by the server: %v", err)
	}
	return time.Since(start)
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestConnLimitsCloseARequestThatOverruns(t *testing.T) {
	bodyErr := make(chan error, 1)
	addr, _ := serveLimited(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		bodyErr <- err
	}))
	c := dial(t, addr)
	// Headers promise 100 bytes; 3 come, then nothing.
	start := time.Now()
	if _, err := io.WriteString(c, "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"); err != nil {
		t.Fatal(err)
	}
	took := closedAfter(t, c, start)
	if took < requestLimit || took > requestLimit+time.Second {
		t.Errorf("closed after %v, want the request limit %v and at most a sweep more", took, requestLimit)
	}
	if err := <-bodyErr; err == nil {
		t.Error("the handler read the whole body of a request cut off")
	}
}

func TestConnLimitsCloseAnIdleConnection(t *testing.T) {
	addr, states := serveLimited(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	c := dial(t, addr)
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	idleFrom := time.Now()
	took := closedAfter(t, c, idleFrom)
	if took < idleLimit-10*time.Millisecond || took > idleLimit+time.Second {
		t.Errorf("idle connection closed after %v, want about %v", took, idleLimit)
	}
	if states.Load() < 3 { // new, active, idle (closed may still be on its way)
		t.Errorf("the server's own ConnState hook saw %d calls, want it chained", states.Load())
	}
}

func TestConnLimitsKeepABusyConnectionOpen(t *testing.T) {
	addr, _ := serveLimited(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	c := dial(t, addr)
	br := bufio.NewReader(c)
	// Requests a third of the idle limit apart, for twice the idle limit
	// in all: each request restarts the idle clock.
	ticker := time.NewTicker(idleLimit / 3)
	defer ticker.Stop()
	for i := 0; i < 6; i++ {
		<-ticker.C
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		_ = resp.Body.Close()
	}
}

func TestConnLimitsLeaveAnUnboundedRequestRunning(t *testing.T) {
	addr, _ := serveLimited(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			httpx.Unbounded(r)
		}
		// Outlive the request limit, writing as a stream does.
		ticker := time.NewTicker(sweepTick)
		defer ticker.Stop()
		for end := time.Now().Add(3 * requestLimit); time.Now().Before(end); <-ticker.C {
			if _, err := io.WriteString(w, "tick\n"); err != nil {
				return
			}
			w.(http.Flusher).Flush()
		}
		_, _ = io.WriteString(w, "done\n")
	}))
	get := func(path string) (string, error) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	body, err := get("/stream")
	if err != nil || !strings.HasSuffix(body, "done\n") {
		t.Fatalf("unbounded stream: %q, %v; want it to end with done", body, err)
	}
	// The same handler without Unbounded is cut off: the limit is on.
	body, err = get("/bounded")
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("bounded request: %q, %v; want it cut off mid-body", body, err)
	}
}

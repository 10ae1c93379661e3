package httpx

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// ConnLimits closes connections that stay too long in one state: a request
// from the end of its headers to the end of its response (Request), or a
// kept-alive connection between requests (Idle). It stands in for
// http.Server's ReadTimeout, WriteTimeout and IdleTimeout, which re-arm
// runtime timers four times per request (BENCHMARKS.md, "Cost per
// request"). Here a request costs two atomic stores: each change of state
// bumps the connection's counter, and a sweep every Tick closes a
// connection whose counter has not moved for the limit. So a connection is
// closed at most a Tick after its limit, never before. The headers keep
// http.Server's ReadHeaderTimeout.
//
// Closing the connection is what the server's deadlines do too: the
// handler's reads and writes fail and its request context is cancelled.
type ConnLimits struct {
	Request time.Duration // 0: no limit
	Idle    time.Duration // 0: no limit
	// Tick is how often connections are checked; 0 means a quarter of the
	// shorter limit, at most a second.
	Tick time.Duration
	Log  *slog.Logger // nil: slog.Default()

	mu    sync.Mutex
	conns map[*limitedConn]struct{}
}

// Connection states a limitedConn tells apart, in its word's low two bits.
const (
	connNew uint64 = iota
	connActive
	connIdle
)

// limitedConn is an accepted connection and its state: the number of
// changes so far, shifted left by two, or the state. The server's
// goroutine for the connection is the only writer.
type limitedConn struct {
	net.Conn
	state     atomic.Uint64
	unbounded atomic.Bool

	// The sweep's own: the state it last saw and when it first saw it.
	seen      uint64
	seenSince time.Time
}

// ReadFrom and CloseWrite reach the TCP connection's own, which net/http
// uses to send files and to close a connection gracefully.
func (c *limitedConn) ReadFrom(r io.Reader) (int64, error) { return io.Copy(c.Conn, r) }

func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *limitedConn) enter(state uint64) {
	c.state.Store((c.state.Load()>>2+1)<<2 | state)
}

type limitedConnKey struct{}

// Listener wraps ln so that the connections it accepts are watched. Serve
// srv on it after Install.
func (l *ConnLimits) Listener(ln net.Listener) net.Listener { return &limitedListener{ln, l} }

type limitedListener struct {
	net.Listener
	limits *ConnLimits
}

func (ln *limitedListener) Accept() (net.Conn, error) {
	c, err := ln.Listener.Accept()
	if err != nil {
		return nil, err
	}
	lc := &limitedConn{Conn: c}
	ln.limits.mu.Lock()
	if ln.limits.conns == nil {
		ln.limits.conns = make(map[*limitedConn]struct{})
	}
	ln.limits.conns[lc] = struct{}{}
	ln.limits.mu.Unlock()
	return lc, nil
}

// Install hooks l into srv: ConnContext and ConnState, chaining whatever
// srv already had. Call it before srv serves on l.Listener, then Run.
func (l *ConnLimits) Install(srv *http.Server) {
	prevContext, prevState := srv.ConnContext, srv.ConnState
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if prevContext != nil {
			ctx = prevContext(ctx, c)
		}
		if lc, ok := c.(*limitedConn); ok {
			ctx = context.WithValue(ctx, limitedConnKey{}, lc)
		}
		return ctx
	}
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		if lc, ok := c.(*limitedConn); ok {
			switch s {
			case http.StateActive:
				lc.enter(connActive)
			case http.StateIdle:
				// Between requests: an Unbounded request has ended.
				lc.unbounded.Store(false)
				lc.enter(connIdle)
			case http.StateHijacked, http.StateClosed:
				l.mu.Lock()
				delete(l.conns, lc)
				l.mu.Unlock()
			}
		}
		if prevState != nil {
			prevState(c, s)
		}
	}
}

// Unbounded lifts the request limit from r's connection for as long as r
// runs (an event stream, a profile); the idle limit applies again after it.
// Outside a server with ConnLimits it does nothing.
func Unbounded(r *http.Request) {
	if lc, ok := r.Context().Value(limitedConnKey{}).(*limitedConn); ok {
		lc.unbounded.Store(true)
	}
}

// Run sweeps every Tick until ctx ends. Keep it running until the server
// has shut down, so requests still running then stay bounded.
func (l *ConnLimits) Run(ctx context.Context) {
	t := time.NewTicker(l.tick())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			l.sweep(now)
		}
	}
}

func (l *ConnLimits) tick() time.Duration {
	if l.Tick > 0 {
		return l.Tick
	}
	tick := time.Second
	for _, d := range []time.Duration{l.Request, l.Idle} {
		if d > 0 && d/4 < tick {
			tick = max(d/4, time.Millisecond)
		}
	}
	return tick
}

// sweep closes every connection that has stayed in one state for its
// limit. A state is timed from the first sweep that saw it, which is after
// it began.
func (l *ConnLimits) sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for lc := range l.conns {
		word := lc.state.Load()
		if word != lc.seen || lc.seenSince.IsZero() {
			lc.seen, lc.seenSince = word, now
			continue
		}
		var limit time.Duration
		switch word & 3 {
		case connNew, connActive:
			if !lc.unbounded.Load() {
				limit = l.Request
			}
		case connIdle:
			limit = l.Idle
		}
		if limit > 0 && now.Sub(lc.seenSince) >= limit {
			l.logger().Debug("http connection closed: over its limit", "remote", lc.RemoteAddr().String(), "limit", limit)
			_ = lc.Close()
			delete(l.conns, lc)
		}
	}
}

func (l *ConnLimits) logger() *slog.Logger {
	if l.Log != nil {
		return l.Log
	}
	return slog.Default()
}

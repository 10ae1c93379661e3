package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/inarious/inarious/internal/ownership"
)

// startQueryServer listens on --query-listen, serves every group's reads of
// the partitions this member owns, and advertises the address in the
// worker's group membership (cfg.Kafka.MemberUserData, which goes into every
// JoinGroup). stop shuts it down.
func startQueryServer(cfg *Config, groups []*workerGroup, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", cfg.QueryListen)
	if err != nil {
		return nil, fmt.Errorf("query listen %s: %w", cfg.QueryListen, err)
	}
	adv := cfg.QueryAdvertise
	if adv == "" {
		adv = advertisable(ln.Addr())
	}
	cfg.Kafka.MemberUserData = ownership.UserData(adv)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) { _, _ = rw.Write([]byte("ok\n")) })
	for _, g := range groups {
		if g.query != nil {
			g.query(mux)
		}
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("worker query server", "err", err)
		}
	}()
	log.Info("worker query listening", "addr", ln.Addr().String(), "advertised", adv)
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, nil
}

// advertisable is the listen address as others can dial it: an unspecified
// host (":8081", "0.0.0.0:8081") becomes this machine's host name.
func advertisable(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return net.JoinHostPort(host, port)
}

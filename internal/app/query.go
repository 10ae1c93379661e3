package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/IBM/sarama"

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

// leaseClient is the Kafka client the leases of a worker's groups send
// their heartbeats over, opened on first use (a worker starts before its
// broker is reachable, and its groups retry).
type leaseClient struct {
	brokers []string
	conf    *sarama.Config

	mu     sync.Mutex
	client sarama.Client
	closed bool
}

func (c *leaseClient) get() (sarama.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("lease client closed")
	}
	if c.client == nil {
		cl, err := sarama.NewClient(c.brokers, c.conf)
		if err != nil {
			return nil, err
		}
		c.client = cl
	}
	return c.client, nil
}

func (c *leaseClient) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.client != nil {
		_ = c.client.Close()
	}
}

// followLeases renews the lease of every group that has one over each of
// its sessions (cfg.Kafka.OnSession, set before the groups run).
func followLeases(cfg *Config, groups []*workerGroup, log *slog.Logger) *leaseClient {
	sc := cfg.Kafka.Sarama()
	sc.ClientID += "-lease"
	c := &leaseClient{brokers: cfg.Kafka.Brokers, conf: sc}
	leases := map[string]*ownership.Lease{}
	for _, g := range groups {
		if g.lease != nil {
			leases[g.lease.Group()] = g.lease
		}
	}
	cfg.Kafka.OnSession = func(group string, sess sarama.ConsumerGroupSession) {
		if l := leases[group]; l != nil {
			l.Follow(c.get, sc.Version, sess)
		}
	}
	log.Debug("following group membership for routed reads", "groups", len(leases))
	return c
}

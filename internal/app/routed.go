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

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/ownership"
	"github.com/inarious/inarious/internal/routing"
	"github.com/inarious/inarious/internal/top"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/processors/usage"
)

// ownersRefresh is how often the API describes the usage group; a read that
// finds the map wrong asks for a description at once.
const ownersRefresh = time.Second

// queryServer is a worker's --query-listen server.
type queryServer struct {
	worker *routing.Worker
	stop   func()
}

// startQueryServer listens on --query-listen and advertises the address in
// the worker's group membership (cfg.Kafka.MemberUserData, which goes into
// every JoinGroup). It serves nothing until a processor is set.
func startQueryServer(ctx context.Context, cfg *Config, idx *top.Index, log *slog.Logger) (*queryServer, error) {
	n, err := cfg.Kafka.TopicPartitions(ctx, string(codecs.ActivityTopic))
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.QueryListen)
	if err != nil {
		return nil, fmt.Errorf("query listen %s: %w", cfg.QueryListen, err)
	}
	adv := cfg.QueryAdvertise
	if adv == "" {
		adv = advertisable(ln.Addr())
	}
	cfg.Kafka.MemberUserData = ownership.UserData(adv)
	w := routing.NewWorker(n, idx, log.With("component", "query"))
	srv := &http.Server{Handler: w.Handler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("worker query server", "err", err)
		}
	}()
	log.Info("worker query listening", "addr", ln.Addr().String(), "advertised", adv)
	return &queryServer{worker: w, stop: func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}}, nil
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

// onUsageProcessor calls fn with every processor of the usage group built.
func onUsageProcessor(next func(*goka.Processor), fn func(*goka.Processor)) func(*goka.Processor) {
	return func(p *goka.Processor) {
		if next != nil {
			next(p)
		}
		if p.Graph().Group() == usage.Group {
			fn(p)
		}
	}
}

// routedUsage is the API's usage source in --usage-source=workers mode.
type routedUsage struct {
	tracker *ownership.Tracker
	reader  *routing.Reader
}

func newRoutedUsage(cfg Config, win windows.Config, log *slog.Logger) (*routedUsage, error) {
	kc, err := sarama.NewClient(cfg.Kafka.Brokers, cfg.Kafka.Sarama())
	if err != nil {
		return nil, fmt.Errorf("ownership client: %w", err)
	}
	tr, err := ownership.NewTracker(kc, string(usage.Group), string(codecs.ActivityTopic), ownersRefresh, log.With("component", "ownership"))
	if err != nil {
		_ = kc.Close()
		return nil, err
	}
	return &routedUsage{tracker: tr, reader: routing.NewReader(tr, win, log.With("component", "routing"))}, nil
}

// readiness shows the owners map on /readyz; ready when it covers every partition.
func (r *routedUsage) readiness() api.ReadinessCheck {
	return api.ReadinessCheck{Name: "usage_owners", Check: func() (bool, any) {
		m, _ := r.tracker.Current()
		st := map[string]any{"source": UsageFromWorkers}
		if m != nil {
			st["group_state"], st["epoch"], st["partitions"], st["owned"] = m.State, m.Epoch, m.Partitions, len(m.Owners)
		}
		if err := r.tracker.Err(); err != nil {
			st["error"] = err.Error()
		}
		return m.Covered(), st
	}}
}

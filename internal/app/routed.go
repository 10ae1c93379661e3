package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/dashboard"
	"github.com/inarious/inarious/internal/ownership"
	"github.com/inarious/inarious/internal/routing"
	"github.com/inarious/inarious/internal/top"
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

func newRoutedUsage(cfg Config, log *slog.Logger) (*routedUsage, error) {
	kc, err := sarama.NewClient(cfg.Kafka.Brokers, cfg.Kafka.Sarama())
	if err != nil {
		return nil, fmt.Errorf("ownership client: %w", err)
	}
	tr, err := ownership.NewTracker(kc, string(usage.Group), string(codecs.ActivityTopic), ownersRefresh, log.With("component", "ownership"))
	if err != nil {
		_ = kc.Close()
		return nil, err
	}
	return &routedUsage{tracker: tr, reader: routing.NewReader(tr, log.With("component", "routing"))}, nil
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

// routedOptions instruments the API in workers mode: /metrics with the
// routing outcomes, and the dashboard fed by the workers.
func (o *observed) routedOptions(cfg Config, log *slog.Logger, r *routedUsage, pub *api.Publisher, hub *dashboard.Hub) ([]api.Option, func()) {
	o.metrics.WatchCounters(r.reader.Counters()...)
	routes, release := o.watchAPI(cfg, log, pub, hub, nil)
	if cfg.DebugPages {
		log.Warn("--debug-pages: goka's pages need the usage view; not mounted with --usage-source=workers")
	}
	log.Info("usage read from the owning workers", "usage_source", UsageFromWorkers)
	return []api.Option{api.WithMiddleware(o.metrics.Middleware), api.WithRoutes(routes...)}, release
}

// routedDashboard is the dashboard's source in workers mode: each tick's
// Refresh fetches the merged top and totals from the workers once, and the
// hub's reads answer from that fetch.
type routedDashboard struct {
	reader topReader
	log    *slog.Logger
	top    int

	mu         sync.Mutex
	last       routing.Top
	ok         bool   // the last fetch answered
	version    uint64 // bumped when a fetch differs from the one before
	increments uint64 // every rise of the workers' sum of totals, so it never goes back
}

// topReader is what the dashboard reads from the workers (routing.Reader).
type topReader interface {
	Top(after *top.Key, limit int) (routing.Top, error)
	Get(client string) (*activitypb.ClientUsage, error)
}

func newRoutedDashboard(r topReader, top int, log *slog.Logger) *routedDashboard {
	if log == nil {
		log = slog.Default()
	}
	return &routedDashboard{reader: r, top: top, log: log}
}

func (d *routedDashboard) Refresh() {
	t, err := d.reader.Top(nil, d.top)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		if d.ok {
			d.log.Warn("dashboard: workers did not answer", "err", err)
		}
		d.ok = false
		return
	}
	if !d.ok || t.Requests != d.last.Requests || t.Clients != d.last.Clients || !slices.Equal(t.Rows, d.last.Rows) {
		d.version++
	}
	if t.Requests > d.last.Requests {
		d.increments += t.Requests - d.last.Requests
	}
	d.last, d.ok = t, true
}

// Recovered: the last fetch answered for every partition.
func (d *routedDashboard) Recovered() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ok
}

func (d *routedDashboard) Get(client string) (*activitypb.ClientUsage, error) {
	return d.reader.Get(client)
}

func (d *routedDashboard) Page(after *top.Key, limit int) []top.Row {
	d.mu.Lock()
	defer d.mu.Unlock()
	if after != nil {
		return nil // the hub only shows the first page
	}
	return d.last.Rows[:min(limit, len(d.last.Rows))]
}

func (d *routedDashboard) Clients() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last.Clients
}

func (d *routedDashboard) Requests() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last.Requests
}

func (d *routedDashboard) Increments() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.increments
}

func (d *routedDashboard) Version() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.version
}

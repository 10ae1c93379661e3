package app

// The usage component: the usage group as workers run it, and its read side
// in the API process.

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/metrics"
	"github.com/inarious/inarious/internal/ownership"
	"github.com/inarious/inarious/internal/routing"
	"github.com/inarious/inarious/internal/top"
	"github.com/inarious/inarious/internal/usagehttp"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/processors/usage"
	"github.com/inarious/inarious/views"
)

// usageGroup is the usage group; with --query-listen it also ranks its own
// clients and joins its partitions of the windowed topics, to answer routed
// reads (internal/routing).
func usageGroup(ctx context.Context, cfg Config, log *slog.Logger) (*workerGroup, error) {
	decoder, w, err := groupInputs(cfg)
	if err != nil {
		return nil, err
	}
	// The lease fences the table's writes (and, with --query-listen, the
	// routed reads): a member stalled past its session timeout neither
	// writes rows from its stale state nor answers from it when it resumes.
	lease := ownership.NewLease(string(usage.Group), kafka.HeartbeatInterval, log.With("component", "lease"))
	opts := []usage.Option{usage.WithLogger(log.With("group", usage.Group)), usage.WithDecoder(decoder),
		usage.WithWindows(w), usage.WithClientRetention(cfg.ClientRetention),
		usage.WithWriteFence(func() error { return lease.Check(routing.LeaseTTL) })}
	if e := cfg.alerting.evaluatorOrNil(); e != nil {
		opts = append(opts, usage.WithAlerts(e))
	}
	if cfg.QueryListen == "" {
		return &workerGroup{Component: cfg.alerting.gate(usage.New(opts...)), lease: lease}, nil
	}
	own := top.New()
	g := usage.New(append(opts, usage.WithTopIndex(own), usage.WithWindowJoins())...)
	// The query endpoint hashes clients over the partitions of Users.
	if err := cfg.Kafka.EnsureTopics(ctx, g.Topics()...); err != nil {
		return nil, err
	}
	n, err := cfg.Kafka.TopicPartitions(ctx, string(codecs.ActivityTopic))
	if err != nil {
		return nil, err
	}
	q := routing.NewWorker(n, own, routing.WithLogger(log.With("component", "query")), routing.WithLease(lease))
	q.SetWindows(g.Windows(), g)
	return &workerGroup{Component: cfg.alerting.gate(g), query: q.Register, onStart: q.SetProcessor, lease: lease, queryCounters: []metrics.Counter{
		{Name: "usage_query_answered_total", Help: "Reads of owned partitions this worker answered.", Value: q.Answered},
		{Name: "usage_query_refused_total", Help: "Reads this worker refused: partition not owned, or rebalancing.", Value: q.Refused},
	}}, nil
}

// serveUsage is the usage group's read side: local views of the table and
// its windowed topics, or (--usage-source=workers) the workers owning each
// client; GET /usage… and the dashboard read either through one
// views.UsageReader.
func serveUsage(_ context.Context, cfg Config, log *slog.Logger) (*servedTable, error) {
	wcfg, err := cfg.WindowConfig()
	if err != nil {
		return nil, err
	}
	t := &servedTable{group: usage.Group, input: codecs.ActivityTopic, table: usage.Table, close: func() {}}
	var reader views.UsageReader
	if cfg.UsageSource == UsageFromWorkers {
		routed, err := newRoutedUsage(cfg, wcfg, log)
		if err != nil {
			return nil, err
		}
		reader = routed.reader
		t.parts = append(t.parts, part{"usage owners", func(ctx context.Context) error { routed.tracker.Run(ctx); return nil }})
		t.checks = append(t.checks, routed.readiness())
		t.counters = append(t.counters, routed.reader.Counters()...)
		t.close = routed.reader.Close
		log.Info("usage read from the owning workers", "usage_source", UsageFromWorkers)
	} else {
		dir := filepath.Join(cfg.DataDir, "api")
		view, err := views.NewUsage(cfg.Kafka, dir, views.WithLogger(log))
		if err != nil {
			return nil, err
		}
		// The windowed views merge closed buckets with the open ones in the
		// client's row.
		win, err := views.NewWindows(cfg.Kafka, wcfg, dir, view, views.WithLogger(log))
		if err != nil {
			return nil, err
		}
		reader = views.Local{Table: view, Windowed: win}
		t.view = view.Goka()
		t.parts = append(t.parts, part{"usage view", view.Run}, part{"windowed usage views", win.Run})
	}
	t.recovered = reader.Recovered
	t.usage = reader
	t.routes = usagehttp.Routes(reader, usagehttp.WithLogger(log))
	return t, nil
}

// ownersRefresh is how often the API describes the usage group; a read that
// finds the map wrong asks for a description at once.
const ownersRefresh = time.Second

// routedUsage is the API's usage source in --usage-source=workers mode.
type routedUsage struct {
	tracker *ownership.Tracker
	reader  *routing.Reader
}

func newRoutedUsage(cfg Config, win windows.Config, log *slog.Logger) (*routedUsage, error) {
	tr, err := newOwnersTracker(cfg, usage.Group, codecs.ActivityTopic, log)
	if err != nil {
		return nil, err
	}
	return &routedUsage{tracker: tr, reader: routing.NewReader(tr, win, routing.WithLogger(log.With("component", "routing")))}, nil
}

// newOwnersTracker tracks the owners of input's partitions in group (the
// workers' members, with their query addresses).
func newOwnersTracker(cfg Config, group goka.Group, input goka.Stream, log *slog.Logger) (*ownership.Tracker, error) {
	kc, err := sarama.NewClient(cfg.Kafka.Brokers, cfg.Kafka.Sarama())
	if err != nil {
		return nil, fmt.Errorf("ownership client: %w", err)
	}
	tr, err := ownership.NewTracker(kc, string(group), string(input), ownersRefresh, ownership.WithLogger(log.With("component", "ownership", "group", group)))
	if err != nil {
		_ = kc.Close()
		return nil, err
	}
	return tr, nil
}

// readiness shows the owners map on /readyz; ready when it covers every partition.
func (r *routedUsage) readiness() api.ReadinessCheck {
	return ownersReadiness("usage_owners", r.tracker)
}

// ownersReadiness shows tracker's map on /readyz as check name; ready when
// it covers every partition.
func ownersReadiness(name string, tracker *ownership.Tracker) api.ReadinessCheck {
	return api.ReadinessCheck{Name: name, Check: func() (bool, any) {
		m, _ := tracker.Current()
		st := map[string]any{"source": UsageFromWorkers}
		if m != nil {
			st["group_state"], st["epoch"], st["partitions"], st["owned"] = m.State, m.Epoch, m.Partitions, len(m.Owners)
		}
		if err := tracker.Err(); err != nil {
			st["error"] = err.Error()
		}
		return m.Covered(), st
	}}
}

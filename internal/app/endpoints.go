package app

// The endpoints component: the endpoints group (and its aggregator) as
// workers run it, and its read side in the API process.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/dashboard"
	"github.com/inarious/inarious/internal/endpointindex"
	"github.com/inarious/inarious/internal/endpointshttp"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/metrics"
	"github.com/inarious/inarious/internal/ownership"
	"github.com/inarious/inarious/internal/routing"
	"github.com/inarious/inarious/processors/endpoints"
	"github.com/inarious/inarious/views"
)

// endpointsGroup is the endpoints group with its aggregator; with
// --query-listen it also indexes its own endpoints and serves reads of its
// partitions (internal/routing).
func endpointsGroup(ctx context.Context, cfg Config, log *slog.Logger) (*workerGroup, error) {
	decoder, w, err := groupInputs(cfg)
	if err != nil {
		return nil, err
	}
	opts := []endpoints.Option{endpoints.WithLogger(log.With("group", endpoints.Group)), endpoints.WithDecoder(decoder),
		endpoints.WithWindows(w), endpoints.WithTransactionalID(transactionalID(cfg, "inarious-endpoints-"))}
	if cfg.QueryListen == "" {
		return &workerGroup{Component: endpoints.New(opts...)}, nil
	}
	own := endpointindex.New()
	g := endpoints.New(append(opts, endpoints.WithStorageLayer(own.Layer(string(endpoints.Table))))...)
	// The query endpoint places endpoints over the partitions of the
	// partials topic (the table's).
	if err := cfg.Kafka.EnsureTopics(ctx, g.Topics()...); err != nil {
		return nil, err
	}
	n, err := cfg.Kafka.TopicPartitions(ctx, string(endpoints.PartialsTopic))
	if err != nil {
		return nil, err
	}
	lease := ownership.NewLease(string(endpoints.Group), kafka.HeartbeatInterval, log.With("component", "lease"))
	q := routing.NewEndpointWorker(n, g, own, routing.WithLogger(log.With("component", "query", "group", endpoints.Group)), routing.WithLease(lease))
	return &workerGroup{Component: g, query: q.Register, onStart: q.SetProcessor, lease: lease, queryCounters: []metrics.Counter{
		{Name: "endpoints_query_answered_total", Help: "Endpoints reads of owned partitions this worker answered.", Value: q.Answered},
		{Name: "endpoints_query_refused_total", Help: "Endpoints reads this worker refused: partition not owned, or rebalancing.", Value: q.Refused},
	}}, nil
}

// transactionalID names a worker's transactions (the endpoints aggregator's,
// the dedupe stage's; prefix tells them apart) after its host and data
// directory: a worker restarted on its storage (after a kill -9, say) ends
// the transaction it left open as it starts, and two workers never share
// storage, so never an ID.
func transactionalID(cfg Config, prefix string) string {
	host, _ := os.Hostname()
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		dir = cfg.DataDir
	}
	sum := sha256.Sum256([]byte(host + "\x00" + dir))
	return prefix + hex.EncodeToString(sum[:8])
}

// serveEndpoints is the endpoints group's read side: a local view of its
// table, or (--usage-source=workers) the workers owning each endpoint's
// partition; GET /endpoints… and the dashboard's endpoint panels read
// either through one views.EndpointReader.
func serveEndpoints(_ context.Context, cfg Config, log *slog.Logger) (*servedTable, error) {
	w, err := cfg.WindowConfig()
	if err != nil {
		return nil, err
	}
	t := &servedTable{
		group: endpoints.Group, input: endpoints.PartialsTopic, table: endpoints.Table,
		lag:   []metrics.LagSource{{Group: endpoints.AggregatorGroup, Input: string(codecs.ActivityTopic)}},
		close: func() {},
	}
	var reader views.EndpointReader
	if cfg.UsageSource == UsageFromWorkers {
		tr, err := newOwnersTracker(cfg, endpoints.Group, endpoints.PartialsTopic, log)
		if err != nil {
			return nil, err
		}
		routed := routing.NewEndpointReader(tr, w, routing.WithLogger(log.With("component", "routing", "group", endpoints.Group)))
		reader = routed
		t.parts = append(t.parts, part{"endpoints owners", func(ctx context.Context) error { tr.Run(ctx); return nil }})
		t.checks = append(t.checks, ownersReadiness("endpoints_owners", tr))
		t.counters = append(t.counters, routed.Counters()...)
		t.close = routed.Close
	} else {
		view, err := views.NewEndpoints(cfg.Kafka, w, filepath.Join(cfg.DataDir, "api"), views.WithLogger(log))
		if err != nil {
			return nil, err
		}
		reader = view
		t.view = view.Goka()
		t.parts = append(t.parts, part{"endpoints view", view.Run})
	}
	t.routes = endpointshttp.Routes(reader, endpointshttp.WithLogger(log))
	t.recovered = reader.Recovered
	t.dashboard = []dashboard.Option{dashboard.WithEndpoints(reader)}
	return t, nil
}

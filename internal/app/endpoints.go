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
	"github.com/inarious/inarious/internal/endpointshttp"
	"github.com/inarious/inarious/internal/metrics"
	"github.com/inarious/inarious/processors/endpoints"
	"github.com/inarious/inarious/views"
)

// endpointsGroup is the endpoints group with its aggregator.
func endpointsGroup(_ context.Context, cfg Config, log *slog.Logger) (*workerGroup, error) {
	decoder, err := activityDecoder(cfg)
	if err != nil {
		return nil, err
	}
	w, err := cfg.WindowConfig()
	if err != nil {
		return nil, err
	}
	g := endpoints.New(endpoints.WithLogger(log.With("group", endpoints.Group)), endpoints.WithDecoder(decoder),
		endpoints.WithWindows(w), endpoints.WithTransactionalID(transactionalID(cfg)))
	return &workerGroup{Component: g}, nil
}

// transactionalID names a worker's aggregator transactions after its host
// and data directory: a worker restarted on its storage (after a kill -9,
// say) ends the transaction it left open as it starts, and two workers
// never share storage, so never an ID.
func transactionalID(cfg Config) string {
	host, _ := os.Hostname()
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		dir = cfg.DataDir
	}
	sum := sha256.Sum256([]byte(host + "\x00" + dir))
	return "inarious-endpoints-" + hex.EncodeToString(sum[:8])
}

// serveEndpoints is the endpoints group's read side: a local view of its
// table; GET /endpoints… and the dashboard's endpoint panels read it
// through one views.EndpointReader.
func serveEndpoints(_ context.Context, cfg Config, log *slog.Logger) (*servedTable, error) {
	w, err := cfg.WindowConfig()
	if err != nil {
		return nil, err
	}
	view, err := views.NewEndpoints(cfg.Kafka, w, filepath.Join(cfg.DataDir, "api"), views.WithLogger(log))
	if err != nil {
		return nil, err
	}
	var reader views.EndpointReader = view
	return &servedTable{
		group: endpoints.Group, input: endpoints.PartialsTopic, table: endpoints.Table,
		parts:     []part{{"endpoints view", view.Run}},
		routes:    endpointshttp.Routes(reader, endpointshttp.WithLogger(log)),
		recovered: reader.Recovered,
		view:      view.Goka(),
		lag:       []metrics.LagSource{{Group: endpoints.AggregatorGroup, Input: string(codecs.ActivityTopic)}},
		dashboard: []dashboard.Option{dashboard.WithEndpoints(reader)},
		close:     func() {},
	}, nil
}

package app

// The dedupe stage as workers run it: events of the ingest endpoints pass
// it on their way to Users, so a retried batch is counted once. It serves
// no table.

import (
	"context"
	"log/slog"

	"github.com/inarious/inarious/processors/dedupe"
)

// dedupeStage is a worker's member of the dedupe stage; nil with
// --dedupe-window=0, when the ingest endpoints publish to Users.
func dedupeStage(_ context.Context, cfg Config, log *slog.Logger) (*workerGroup, error) {
	if cfg.DedupeWindow == 0 {
		return nil, nil
	}
	decoder, _, err := groupInputs(cfg)
	if err != nil {
		return nil, err
	}
	return &workerGroup{Component: dedupe.New(
		dedupe.WithLogger(log.With("stage", dedupe.Group)),
		dedupe.WithDecoder(decoder),
		dedupe.WithWindow(cfg.DedupeWindow),
		dedupe.WithMaxIDs(cfg.DedupeMaxIDs),
		dedupe.WithTransactionalID(transactionalID(cfg, "inarious-dedupe-")),
	)}, nil
}

package app

// Quotas (--quotas): the policy table's view in every API replica, the
// limiter over the usage table's read side, and the /quotas routes.

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/inarious/inarious/internal/metrics"
	"github.com/inarious/inarious/internal/quotas"
	"github.com/inarious/inarious/internal/quotas/enforce"
	"github.com/inarious/inarious/internal/quotas/quotahttp"
)

// serveQuotas is the quota policies as the API serves and enforces them,
// over the usage table of tables; nil without --quotas.
func serveQuotas(ctx context.Context, cfg Config, tables []*servedTable, log *slog.Logger) (*servedTable, error) {
	if !cfg.Quotas {
		return nil, nil
	}
	var usage enforce.Usage
	for _, t := range tables {
		if t.usage != nil {
			usage = t.usage
		}
	}
	if usage == nil {
		return nil, fmt.Errorf("--quotas needs the usage table")
	}
	wcfg, err := cfg.WindowConfig()
	if err != nil {
		return nil, err
	}
	if err := cfg.Kafka.EnsureTopics(ctx, quotas.TopicSpec()); err != nil {
		return nil, err
	}
	log = log.With("component", "quotas")
	table, err := quotas.NewTable(cfg.Kafka, log)
	if err != nil {
		return nil, err
	}
	lc := enforce.Config{Refresh: cfg.QuotaRefresh, Lag: cfg.QuotaLag, Replicas: cfg.QuotaReplicas, Exempt: splitList(cfg.QuotaExempt)}
	lim := enforce.New(table, usage, lc, enforce.WithLogger(log))
	log.Info("quotas enforced", "refresh", lc.Refresh, "lag", lc.Lag, "replicas", lc.Replicas, "exempt", lc.Exempt)
	return &servedTable{
		table:     quotas.Topic,
		view:      table.Goka(),
		parts:     []part{{"quota policies view", table.Run}},
		routes:    quotahttp.Routes(table, lim, wcfg, quotahttp.WithLogger(log), quotahttp.WithMaxBodyBytes(cfg.MaxBodyBytes)),
		recovered: table.Recovered,
		counters:  quotaCounters(lim),
		gate:      lim.Gate,
		close: func() {
			if err := table.Close(); err != nil {
				log.Warn("quota policies emitter close", "err", err)
			}
		},
	}, nil
}

// quotaCounters are the limiter's decisions and failed reads, for /metrics
// (kept out of enforce: the public middleware uses it without a server).
func quotaCounters(lim *enforce.Limiter) []metrics.Counter {
	return []metrics.Counter{
		{Name: "quota_allowed_total", Help: "Calls a quota policy applied to that were allowed.", Value: func() uint64 { return lim.Totals().Allowed }},
		{Name: "quota_refused_total", Help: "Calls refused with 429 for being over a quota.", Value: func() uint64 { return lim.Totals().Refused }},
		{Name: "quota_read_errors_total", Help: "Reads of a policy or of usage that failed (the call was decided on what was read before, or allowed).", Value: func() uint64 { return lim.Totals().ReadErrors }},
		{Name: "quota_clients_evicted_total", Help: "Client states dropped while their calls still counted, the limiter being full (MaxClients).", Value: func() uint64 { return lim.Totals().Evicted }},
	}
}

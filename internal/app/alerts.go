package app

// The alerts component: alert rules evaluated by the usage and endpoints
// groups, the deliverer run by every worker, and the rules and active
// alerts served by the API (README, "Alerts").

import (
	"context"
	"log/slog"

	"github.com/lovoo/goka"
	"golang.org/x/sync/errgroup"

	"github.com/inarious/inarious/internal/alerts"
	"github.com/inarious/inarious/internal/alertshttp"
	"github.com/inarious/inarious/internal/dashboard"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/metrics"
	"github.com/inarious/inarious/internal/quotas"
	"github.com/inarious/inarious/internal/stream"
)

// workerAlerting is what a worker's groups evaluate rules with: one view of
// the rules, one of the quota policies (for rules on a quota), and one
// evaluator for both groups.
type workerAlerting struct {
	rules     *alerts.Rules
	policies  *quotas.Index
	evaluator *alerts.Evaluator
}

func newWorkerAlerting(cfg Config, log *slog.Logger) *workerAlerting {
	rules := alerts.NewRulesView(cfg.Kafka, log.With("component", "alert-rules"))
	policies := quotas.NewIndexView(cfg.Kafka, log.With("component", "quota-policies"))
	return &workerAlerting{rules: rules, policies: policies, evaluator: alerts.NewEvaluator(rules).WithQuotas(policies)}
}

// gate starts c once the rules and policies are read, so no crossing is
// missed for want of its rule or policy; without alerting it is c.
func (a *workerAlerting) gate(c stream.Component) stream.Component {
	if a == nil {
		return c
	}
	return gated{Component: c, alerting: a}
}

// evaluator is nil without alerting (the API's groups, built for topics).
func (a *workerAlerting) evaluatorOrNil() *alerts.Evaluator {
	if a == nil {
		return nil
	}
	return a.evaluator
}

type gated struct {
	stream.Component
	alerting *workerAlerting
}

func (g gated) Run(ctx context.Context, cfg kafka.Config, dataDir string, onStart func(*goka.Processor)) error {
	if g.alerting.rules.WaitRecovered(ctx) != nil || g.alerting.policies.WaitRecovered(ctx) != nil {
		return nil
	}
	return g.Component.Run(ctx, cfg, dataDir, onStart)
}

// alertsGroup is the worker's alerting: it follows the rules (for both
// groups' evaluation) and the quota policies (for rules on a quota), and
// delivers alerts to webhooks.
func alertsGroup(_ context.Context, cfg Config, log *slog.Logger) (*workerGroup, error) {
	var hook *alerts.Webhook
	if cfg.AlertWebhookURL != "" {
		hook = &alerts.Webhook{URL: cfg.AlertWebhookURL, Secret: cfg.AlertWebhookSecret}
	}
	w := &alertsWorker{alerting: cfg.alerting, log: log.With("component", "alerts")}
	var rules *alerts.Rules
	if cfg.alerting != nil {
		rules = cfg.alerting.rules
	}
	w.deliverer = alerts.NewDeliverer(rules, alerts.DeliveryOptions{Webhook: hook, Attempts: cfg.AlertAttempts, Backoff: cfg.AlertBackoff}, w.log)
	return &workerGroup{Component: w}, nil
}

// alertsWorker runs the rules' and policies' views and the deliverer
// (stream.Component).
type alertsWorker struct {
	alerting  *workerAlerting
	deliverer *alerts.Deliverer
	log       *slog.Logger
}

// Topics are alerting's, and the quota policies' that rules on a quota read.
func (w *alertsWorker) Topics() []kafka.TopicSpec { return append(alerts.Topics(), quotas.TopicSpec()) }

func (w *alertsWorker) Counters() []metrics.Counter {
	return append([]metrics.Counter{{Name: "alerts_fired_total", Help: "Alerts the worker's groups emitted (a crossing, or a replay that may have lost one), repeats included.",
		Value: w.alerting.evaluatorOrNil().Fired}}, w.deliverer.Counters()...)
}

func (w *alertsWorker) Run(ctx context.Context, cfg kafka.Config, _ string, _ func(*goka.Processor)) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return w.alerting.rules.Run(gctx) })
	g.Go(func() error { return w.alerting.policies.Run(gctx) })
	g.Go(func() error { return w.deliverer.Run(gctx, cfg) })
	err := g.Wait()
	w.log.Info("alerting stopped", "err", err)
	return err
}

// serveAlerts is alerting's side in the API: the rules' view and writer,
// the active alerts, their routes and dashboard panel.
func serveAlerts(_ context.Context, cfg Config, log *slog.Logger) (*servedTable, error) {
	log = log.With("component", "alerts")
	wcfg, err := cfg.WindowConfig()
	if err != nil {
		return nil, err
	}
	rules := alerts.NewRulesView(cfg.Kafka, log)
	active, err := alerts.NewActive(cfg.Kafka, log)
	if err != nil {
		return nil, err
	}
	writer, err := alerts.NewWriter(cfg.Kafka, log)
	if err != nil {
		return nil, err
	}
	return &servedTable{
		parts: []part{{"alert rules view", rules.Run}, {"active alerts view", active.Run}},
		routes: alertshttp.Routes(alertshttp.Deps{Rules: rules, Writer: writer, Active: active, Windows: wcfg, Log: log,
			MaxBodyBytes: cfg.MaxBodyBytes}),
		recovered: func() bool { return rules.Recovered() && active.Recovered() },
		gauges: []metrics.Gauge{{Name: "alerts_active", Help: "Alerts whose window has not ended.",
			Value: func() float64 { return float64(active.Count()) }}},
		lag:       []metrics.LagSource{{Group: alerts.DelivererGroup, Input: string(alerts.Topic)}},
		dashboard: []dashboard.Option{dashboard.WithAlerts(func() []dashboard.AlertRow { return alertRows(active.List()) })},
		close: func() {
			if err := writer.Close(); err != nil {
				log.Warn("alert rules writer close", "err", err)
			}
		},
	}, nil
}

func alertRows(list []*alerts.Alert) []dashboard.AlertRow {
	rows := make([]dashboard.AlertRow, len(list))
	for i, a := range list {
		rows[i] = dashboard.AlertRow{ID: a.ID, Rule: a.Rule, Kind: string(a.Kind), Key: a.Key(), Window: a.Window,
			Threshold: a.Threshold, Limit: a.Limit, Value: a.Value, WindowEnd: a.WindowEnd, FiredAt: a.FiredAt}
	}
	return rows
}

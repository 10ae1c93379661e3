// Package alerts is threshold alerting on the tables: alert rules as data
// (a compacted topic every process reads as a table, Rules), their
// evaluation where a key is owned (the usage and endpoints groups call an
// Evaluator; each crossing fires an Alert with a deterministic ID), and the
// Deliverer, which POSTs alerts to webhooks, signed, with retries and a
// dead letter. How and why: README, "Alerts".
package alerts

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/internal/kafka"
)

// Topics of alerting.
const (
	// RulesTopic holds the rules, keyed by name (compacted; a tombstone
	// deletes a rule).
	RulesTopic = "alert-rules"
	// Topic holds fired alerts, keyed by ID; an alert fired again after a
	// crash or rebalance has the same ID and is dropped by the deliverer.
	Topic goka.Stream = "alerts"
	// DeadLetterTopic holds alerts whose webhook stayed down past the
	// retry budget, or that have no webhook.
	DeadLetterTopic = "alerts-dead-letter"
	// DelivererGroup is the deliverers' consumer group on Topic.
	DelivererGroup = "alerts-deliverer"
)

// RulesTable is RulesTopic as goka views it.
const RulesTable goka.Table = RulesTopic

// retention of alerts and dead letters: a week, as Users.
const retention = 7 * 24 * time.Hour

// Topics are alerting's topics. Rules are few: one partition. Alerts are
// spread over as many as Users, so deliverers share them.
func Topics() []kafka.TopicSpec {
	return []kafka.TopicSpec{
		{Name: RulesTopic, Partitions: 1, Compact: true},
		{Name: string(Topic), Compact: true, Retention: retention},
		{Name: DeadLetterTopic, Partitions: 1, Retention: retention},
	}
}

// Alert is one crossing of a rule's threshold in one window, as written to
// Topic and POSTed to the webhook.
type Alert struct {
	// ID is the same for every firing of this rule, key, window and
	// threshold (AlertID): a receiver drops duplicates by it.
	ID       string `json:"id"`
	Rule     string `json:"rule"`
	Kind     Kind   `json:"kind"`
	Client   string `json:"client,omitempty"`
	Endpoint string `json:"endpoint,omitempty"`
	Window   string `json:"window"`
	// WindowStart and WindowEnd bound the window (UTC-aligned bucket).
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	// Threshold as the rule gives it (percent of Limit, percent or ms),
	// and the value it crossed: calls, percent or ms.
	Threshold float64 `json:"threshold"`
	Limit     uint64  `json:"limit,omitempty"`
	Value     float64 `json:"value"`
	// FiredAt is when the processor saw the crossing (its clock).
	FiredAt time.Time `json:"fired_at"`
}

// Key is the client or endpoint the alert is about.
func (a *Alert) Key() string {
	if a.Client != "" {
		return a.Client
	}
	return a.Endpoint
}

// Active is whether a's window has not ended at now.
func (a *Alert) Active(now time.Time) bool { return now.Before(a.WindowEnd) }

// AlertID is the deterministic ID of rule's alert on key in the window of
// step starting at startUnix, for threshold (as the rule gives it) and the
// rule's limit: a replay, a crash or a rebalance that fires it again gives
// the same ID; a changed rule gives new ones.
func AlertID(rule string, kind Kind, key string, step time.Duration, startUnix int64, threshold float64, limit uint64) string {
	h := sha256.New()
	var num [8]byte
	for _, s := range []string{rule, string(kind), key} {
		binary.BigEndian.PutUint64(num[:], uint64(len(s)))
		h.Write(num[:])
		h.Write([]byte(s))
	}
	for _, n := range []uint64{uint64(step / time.Second), uint64(startUnix), math.Float64bits(threshold), limit} {
		binary.BigEndian.PutUint64(num[:], n)
		h.Write(num[:])
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// AlertCodec encodes alerts as JSON (goka.Codec).
type AlertCodec struct{}

// Encode implements goka.Codec.
func (AlertCodec) Encode(v any) ([]byte, error) {
	a, ok := v.(*Alert)
	if !ok {
		return nil, fmt.Errorf("alerts: cannot encode %T as an alert", v)
	}
	return json.Marshal(a)
}

// Decode implements goka.Codec.
func (AlertCodec) Decode(data []byte) (any, error) {
	a := new(Alert)
	if err := json.Unmarshal(data, a); err != nil {
		return nil, fmt.Errorf("alerts: alert: %w", err)
	}
	return a, nil
}

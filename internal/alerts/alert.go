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
	// Share is Value in percent of Limit (client_usage), to 0.01.
	Share float64 `json:"share,omitempty"`
	// Quota is the rule's quota (the policy limit's name) and Policy the
	// policy Limit came from: the client's own, or "*" (the default).
	Quota  string `json:"quota,omitempty"`
	Policy string `json:"policy,omitempty"`
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
	return firing{rule: rule, kind: kind, key: key, step: step, start: startUnix, threshold: threshold, limit: limit}.id()
}

// QuotaAlertID is AlertID for a rule on quota, with the limit the
// client's policy had when the event was counted.
func QuotaAlertID(rule, key, quota string, step time.Duration, startUnix int64, threshold float64, limit uint64) string {
	return firing{rule: rule, kind: ClientUsage, key: key, quota: quota, step: step, start: startUnix, threshold: threshold, limit: limit}.id()
}

// firing is what an alert's ID is made of; Evaluator remembers it.
type firing struct {
	rule  string
	kind  Kind
	key   string
	quota string
	step  time.Duration
	start int64
	// threshold as the rule gives it; limit, of the rule or the quota.
	threshold float64
	limit     uint64
}

func (f firing) id() string {
	h := sha256.New()
	var num [8]byte
	strs := []string{f.rule, string(f.kind), f.key}
	if f.quota != "" { // absent, as before quotas, from other rules' IDs
		strs = append(strs, f.quota)
	}
	for _, s := range strs {
		binary.BigEndian.PutUint64(num[:], uint64(len(s)))
		h.Write(num[:])
		h.Write([]byte(s))
	}
	for _, n := range []uint64{uint64(f.step / time.Second), uint64(f.start), math.Float64bits(f.threshold), f.limit} {
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

// Package usage is the usage processor group: per client, how often it called
// each endpoint, since it was first seen. It reads the activity topic and
// keeps a changelog-backed group table keyed by client.
//
// Counting is exact across crashes: goka is at-least-once, so each table
// value records the input offset it last applied per partition and a
// replayed event is skipped (and the value written to the changelog again).
// Records that cannot be counted go to the dead-letter topic with the reason.
package usage

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/metrics"
	"github.com/inarious/inarious/internal/stream"
)

// Names of the group, its table and the topics it writes.
const (
	Group goka.Group = "usage"
	// DeadLetterTopic receives activity records the group cannot count.
	DeadLetterTopic goka.Stream = "Users.deadletter"
)

// Table is the group table (topic "usage-table"), keyed by client, values
// *activitypb.ClientUsage.
var Table = goka.GroupTable(Group)

// Activity events are kept a week; their counts live on in the table.
const inputRetention = 7 * 24 * time.Hour

// Topics the group reads and writes (stream.Component).
func (p *Processor) Topics() []kafka.TopicSpec { return Topics() }

// Topics the group reads and writes.
func Topics() []kafka.TopicSpec {
	return []kafka.TopicSpec{
		kafka.Stream(string(codecs.ActivityTopic), inputRetention),
		kafka.Stream(string(DeadLetterTopic), inputRetention),
		kafka.Table(string(Table)),
	}
}

// Dead-letter headers say why and where a record was rejected.
const (
	HeaderReason    = "inarious-reason"
	HeaderPartition = "inarious-source-partition"
	HeaderOffset    = "inarious-source-offset"
)

// DefaultValueCache is how many decoded clients a member keeps in memory,
// split over the partitions it owns: about 1.5 KB each with five endpoints.
const DefaultValueCache = 32768

// Processor counts, per client, the calls of each endpoint.
type Processor struct {
	log   *slog.Logger
	cache *valueCache

	processed    atomic.Uint64
	replays      atomic.Uint64
	deadLettered atomic.Uint64
}

// Stats are counters since the process started.
type Stats struct {
	Processed    uint64 // events counted
	Replays      uint64 // events skipped because their offset was already applied
	DeadLettered uint64 // records sent to the dead-letter topic
}

// Option configures the processor.
type Option func(*Processor)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(log *slog.Logger) Option { return func(p *Processor) { p.log = log } }

// WithValueCache keeps up to n decoded clients in memory (0 turns the cache
// off; default DefaultValueCache). It is dropped on every rebalance, which
// stream.NewProcessor reports to Rebalanced.
func WithValueCache(n int) Option {
	return func(p *Processor) {
		p.cache = nil
		if n > 0 {
			p.cache = newValueCache(n)
		}
	}
}

// New returns the usage processor.
func New(opts ...Option) *Processor {
	p := &Processor{log: slog.Default(), cache: newValueCache(DefaultValueCache)}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Run runs a member of the group until ctx ends, with its local storage
// under dataDir, rebuilding it when Kafka goes away (stream.Run).
func (p *Processor) Run(ctx context.Context, cfg kafka.Config, dataDir string, onStart func(*goka.Processor)) error {
	err := stream.Run(ctx, cfg, p, dataDir, p.log, onStart)
	s := p.Stats()
	p.log.Info("usage group stopped", "processed", s.Processed, "replays_skipped", s.Replays, "dead_lettered", s.DeadLettered)
	return err
}

// Rebalanced drops the value cache: another member may have counted for a
// client while this one did not own its partition.
func (p *Processor) Rebalanced(a goka.Assignment) {
	if p.cache != nil {
		p.cache.rebalanced(a)
	}
}

// Stats returns the counters.
func (p *Processor) Stats() Stats {
	return Stats{Processed: p.processed.Load(), Replays: p.replays.Load(), DeadLettered: p.deadLettered.Load()}
}

// Counters are the group's metrics.
func (p *Processor) Counters() []metrics.Counter {
	return []metrics.Counter{
		{Name: "usage_events_processed_total", Help: "Activity events counted into the usage table.", Value: p.processed.Load},
		{Name: "usage_replays_skipped_total", Help: "Activity events skipped because their offset was already applied.", Value: p.replays.Load},
		{Name: "usage_dead_lettered_total", Help: "Activity records sent to the dead-letter topic.", Value: p.deadLettered.Load},
	}
}

// Graph is the group graph: Users in (raw bytes, so one undecodable record is
// dead-lettered instead of stopping the group), the usage table persisted.
func (p *Processor) Graph() *goka.GroupGraph {
	return goka.DefineGroup(Group,
		goka.Input(codecs.ActivityTopic, new(codec.Bytes), p.process),
		goka.Output(DeadLetterTopic, new(codec.Bytes)),
		goka.Persist(new(codecs.ClientUsage)),
	)
}

// process is the goka callback for one activity record.
func (p *Processor) process(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	ev := new(activitypb.BackendApiActivity)
	if err := ev.UnmarshalVT(raw); err != nil {
		p.deadLetter(ctx, raw, "undecodable: "+err.Error())
		return
	}
	client := codecs.ClientOf(ev)
	switch {
	case client == "":
		p.deadLetter(ctx, raw, "no client")
		return
	case client != ctx.Key():
		// Counting under another key than the record's would put one client's
		// counts in several partitions and break ordering.
		p.deadLetter(ctx, raw, fmt.Sprintf("key %q does not match client %q", ctx.Key(), client))
		return
	}

	usage, cached := p.cache.get(ctx.Partition(), client)
	if !cached {
		usage, _ = ctx.Value().(*activitypb.ClientUsage)
		if usage == nil {
			usage = &activitypb.ClientUsage{Client: client}
		}
		p.cache.put(ctx.Partition(), client, usage)
	}
	if !Apply(usage, ev, ctx.Partition(), ctx.Offset()) {
		p.replays.Add(1)
		// The local value may be ahead of the changelog (a crash between the
		// local write and the changelog ack). Writing it again puts it in the
		// changelog before this input offset is committed, so a member that
		// rebuilds the table from the changelog cannot miss the event.
		ctx.SetValue(usage)
		return
	}
	ctx.SetValue(usage)
	p.processed.Add(1)
}

// Apply adds ev, read at partition/offset, to usage. It returns false, leaving
// usage alone, when that offset was already applied: after a crash goka replays
// uncommitted input, and counting it again would over-count.
func Apply(usage *activitypb.ClientUsage, ev *activitypb.BackendApiActivity, partition int32, offset int64) bool {
	if last, ok := usage.AppliedOffsets[partition]; ok && offset <= last {
		return false
	}
	if usage.AppliedOffsets == nil {
		usage.AppliedOffsets = make(map[int32]int64, 1)
	}
	usage.AppliedOffsets[partition] = offset
	if usage.Endpoints == nil {
		usage.Endpoints = make(map[string]*activitypb.EndpointUsage)
	}
	key := codecs.EndpointKey(ev)
	ep := usage.Endpoints[key]
	if ep == nil {
		ep = new(activitypb.EndpointUsage)
		usage.Endpoints[key] = ep
	}
	ep.Count++
	usage.Total++
	seen := ev.GetRequestTime()
	if seen == nil {
		seen = timestamppb.Now()
	}
	ep.LastSeen = seen
	if usage.FirstSeen == nil {
		usage.FirstSeen = seen
	}
	usage.LastSeen = seen
	return true
}

func (p *Processor) deadLetter(ctx goka.Context, raw []byte, reason string) {
	p.deadLettered.Add(1)
	p.log.Warn("dead-lettering activity record", "reason", reason, "partition", ctx.Partition(), "offset", ctx.Offset())
	ctx.Emit(DeadLetterTopic, ctx.Key(), raw, goka.WithCtxEmitHeaders(goka.Headers{
		HeaderReason:    []byte(reason),
		HeaderPartition: []byte(strconv.Itoa(int(ctx.Partition()))),
		HeaderOffset:    []byte(strconv.FormatInt(ctx.Offset(), 10)),
	}))
}

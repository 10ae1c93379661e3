// Package processors holds the goka processor groups of Inarious.
package processors

import (
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/kafka"
)

// Dead-letter headers say why and where a record was rejected.
const (
	HeaderReason    = "inarious-reason"
	HeaderPartition = "inarious-source-partition"
	HeaderOffset    = "inarious-source-offset"
)

// UnmatchedRoute stands for the route of requests no route matched, so
// arbitrary paths cannot grow the table.
const UnmatchedRoute = "(unmatched)"

// Usage counts, per client, the calls of each endpoint.
type Usage struct {
	log   *slog.Logger
	cache *valueCache

	processed    atomic.Uint64
	replays      atomic.Uint64
	deadLettered atomic.Uint64
}

// UsageStats are counters since the process started.
type UsageStats struct {
	Processed    uint64 // events counted
	Replays      uint64 // events skipped because their offset was already applied
	DeadLettered uint64 // records sent to the dead-letter topic
}

// UsageOption configures the usage counter.
type UsageOption func(*Usage)

// WithValueCache keeps up to n decoded clients per partition in memory
// (0 turns the cache off). Only safe where goka reports rebalances to
// RebalanceCallback, which NewWorker arranges.
func WithValueCache(n int) UsageOption {
	return func(u *Usage) {
		u.cache = nil
		if n > 0 {
			u.cache = newValueCache(n)
		}
	}
}

// NewUsage returns the usage counter; log may be nil.
func NewUsage(log *slog.Logger, opts ...UsageOption) *Usage {
	if log == nil {
		log = slog.Default()
	}
	u := &Usage{log: log}
	for _, o := range opts {
		o(u)
	}
	return u
}

// RebalanceCallback must be given to goka (WithRebalanceCallback) when the
// value cache is on.
func (u *Usage) RebalanceCallback(a goka.Assignment) {
	if u.cache != nil {
		u.cache.rebalanced(a)
	}
}

// Stats returns the counters.
func (u *Usage) Stats() UsageStats {
	return UsageStats{Processed: u.processed.Load(), Replays: u.replays.Load(), DeadLettered: u.deadLettered.Load()}
}

// Graph is the group graph: Users in (raw bytes, so one undecodable record is
// dead-lettered instead of stopping the group), the usage table persisted.
func (u *Usage) Graph() *goka.GroupGraph {
	return goka.DefineGroup(kafka.UsageGroup,
		goka.Input(kafka.ActivityTopic, new(codec.Bytes), u.Process),
		goka.Output(kafka.DeadLetterTopic, new(codec.Bytes)),
		goka.Persist(new(codecs.ClientUsage)),
	)
}

// EndpointKey names an endpoint by method and route template, never the raw
// path, so ids in paths do not explode the table.
func EndpointKey(ev *activitypb.BackendApiActivity) string {
	route := ev.GetRoute()
	if route == "" {
		route = UnmatchedRoute
	}
	return ev.GetHttpMethod() + " " + route
}

// ClientOf is the identity an event is counted under.
func ClientOf(ev *activitypb.BackendApiActivity) string {
	if c := ev.GetClient(); c != "" {
		return c
	}
	return ev.GetClientHost()
}

// Process is the goka callback for one activity record.
func (u *Usage) Process(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	ev := new(activitypb.BackendApiActivity)
	if err := ev.UnmarshalVT(raw); err != nil {
		u.deadLetter(ctx, raw, "undecodable: "+err.Error())
		return
	}
	client := ClientOf(ev)
	switch {
	case client == "":
		u.deadLetter(ctx, raw, "no client")
		return
	case client != ctx.Key():
		// Counting under another key than the record's would put one client's
		// counts in several partitions and break ordering.
		u.deadLetter(ctx, raw, fmt.Sprintf("key %q does not match client %q", ctx.Key(), client))
		return
	}

	usage, cached := u.cache.get(ctx.Partition(), client)
	if !cached {
		usage, _ = ctx.Value().(*activitypb.ClientUsage)
		if usage == nil {
			usage = &activitypb.ClientUsage{Client: client}
		}
		u.cache.put(ctx.Partition(), client, usage)
	}
	if !Apply(usage, ev, ctx.Partition(), ctx.Offset()) {
		u.replays.Add(1)
		// The local value may be ahead of the changelog (a crash between the
		// local write and the changelog ack). Writing it again puts it in the
		// changelog before this input offset is committed, so a member that
		// rebuilds the table from the changelog cannot miss the event.
		ctx.SetValue(usage)
		return
	}
	ctx.SetValue(usage)
	u.processed.Add(1)
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
	key := EndpointKey(ev)
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

func (u *Usage) deadLetter(ctx goka.Context, raw []byte, reason string) {
	u.deadLettered.Add(1)
	u.log.Warn("dead-lettering activity record", "reason", reason, "partition", ctx.Partition(), "offset", ctx.Offset())
	ctx.Emit(kafka.DeadLetterTopic, ctx.Key(), raw, goka.WithCtxEmitHeaders(goka.Headers{
		HeaderReason:    []byte(reason),
		HeaderPartition: []byte(strconv.Itoa(int(ctx.Partition()))),
		HeaderOffset:    []byte(strconv.FormatInt(ctx.Offset(), 10)),
	}))
}

// Package usage is the usage processor group: per client, how often it called
// each endpoint and with which status class (codecs.StatusClass), all-time
// and in tumbling windows, in a changelog-backed group table keyed by
// client. It counts any producer's events exactly across crashes (replayed
// input is skipped by the position each row records; events under another
// key are re-keyed through the group's loopback topic), writes rows through
// a record cache (stream.TableCache), emits closed windows to the windowed
// topics, and expires idle clients.
// How and why: README, "Guarantees", "Events from other producers",
// "Windowed usage".
package usage

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/codecs/confluent"
	"github.com/inarious/inarious/internal/alerts"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/metrics"
	"github.com/inarious/inarious/internal/stream"
	"github.com/inarious/inarious/internal/tablestore"
	"github.com/inarious/inarious/internal/top"
	"github.com/inarious/inarious/internal/windows"
)

// Names of the group, its table and the topics it writes.
const (
	Group goka.Group = "usage"
	// DeadLetterTopic receives activity records the group cannot count.
	DeadLetterTopic goka.Stream = "Users.deadletter"
	// LoopTopic (goka's loopback of the group) carries events that arrived
	// under another key than their client, or in another partition than the
	// one the group's partitioner gives their client, to that partition.
	LoopTopic goka.Stream = "usage-loop"
)

// Table is the group table (topic "usage-table"), keyed by client, values
// *activitypb.ClientUsage.
var Table = goka.GroupTable(Group)

// Activity events are kept a week; their counts live on in the table.
const inputRetention = 7 * 24 * time.Hour

// Topics the group reads and writes (stream.Component).
func (p *Processor) Topics() []kafka.TopicSpec { return topics(p.windows) }

// Topics the group reads and writes with the default windows.
func Topics() []kafka.TopicSpec { return topics(windows.Default()) }

func topics(w windows.Config) []kafka.TopicSpec {
	specs := []kafka.TopicSpec{
		kafka.Stream(string(codecs.ActivityTopic), inputRetention),
		kafka.Stream(string(DeadLetterTopic), inputRetention),
		coPartitioned(kafka.Stream(string(LoopTopic), inputRetention)),
		coPartitioned(kafka.Stream(string(ControlTopic), inputRetention)),
		kafka.Table(string(Table)),
	}
	for _, s := range w.Specs {
		specs = append(specs, WindowTopic(s, w.Grace))
	}
	return specs
}

// coPartitioned makes an input of the group match Users, whoever created it.
func coPartitioned(s kafka.TopicSpec) kafka.TopicSpec {
	s.CoPartitionedWith = string(codecs.ActivityTopic)
	return s
}

// WindowTopic is a granularity's windowed topic: the last value per key
// (compacted), nothing older than the retention plus the grace period
// (a bucket is emitted about a grace period after its end).
func WindowTopic(s windows.Spec, grace time.Duration) kafka.TopicSpec {
	// Co-partitioned with Users: a client's buckets are placed like the
	// client (PartitionKey), and members with query endpoints join them.
	return kafka.TopicSpec{Name: windows.Topic(s.Step), Compact: true, Retention: s.Retention + grace,
		CoPartitionedWith: string(codecs.ActivityTopic)}
}

// Dead-letter headers say why and where a record was rejected.
const (
	HeaderReason    = "inarious-reason"
	HeaderPartition = "inarious-source-partition"
	HeaderOffset    = "inarious-source-offset"
)

// MaxEndpoints bounds the distinct endpoints kept per client, so URLs with
// unbounded segments cannot grow a value without limit; calls of further
// endpoints are counted under "METHOD (other)".
const MaxEndpoints = 256

// OtherEndpoint is the route of calls beyond MaxEndpoints.
const OtherEndpoint = "(other)"

// DefaultValueCache is how many decoded clients a member keeps in memory,
// split over the partitions it owns: about 1.5 KB each with five endpoints.
const DefaultValueCache = 32768

// Processor counts, per client, the calls of each endpoint.
type Processor struct {
	log   *slog.Logger
	cache *valueCache
	// writes holds updated rows and writes each once per interval
	// (stream.TableCache): a busy client's row is encoded once, not per event.
	writes     *stream.TableCache
	writesOpts stream.TableCacheOptions
	fenceCheck func() error
	fence      *stream.Fence // nil: none
	decoder    *confluent.Decoder
	windows    windows.Config
	now        func() time.Time
	// windowed topic by step in seconds.
	windowTopics    map[int64]goka.Stream
	clientRetention time.Duration
	top             *top.Index // nil unless WithTopIndex
	joins           bool       // WithWindowJoins
	// open holds the storages goka holds open: the table's partitions (the
	// janitor reads them) and the joined windowed ones (ScanWindow, the
	// pruner).
	open tablestore.Registry
	// alerts evaluates client rules (WithAlerts); nil without.
	alerts *alerts.Evaluator

	// partitions of the input topic, 0 while unknown (goka's tester).
	partitions atomic.Int32

	processed    atomic.Uint64
	replays      atomic.Uint64
	deadLettered atomic.Uint64
	rekeyed      atomic.Uint64
	late         atomic.Uint64
	emitted      atomic.Uint64
	expired      atomic.Uint64
}

// Stats are counters since the process started.
type Stats struct {
	Processed    uint64 // events counted
	Replays      uint64 // events skipped because their offset was already applied
	DeadLettered uint64 // records sent to the dead-letter topic
	Rekeyed      uint64 // events sent on to their client's partition
	Late         uint64 // (event, granularity) pairs dropped: the bucket had closed
	Emitted      uint64 // closed buckets emitted to windowed topics (repeats included)
	Expired      uint64 // idle clients' rows deleted
}

// Option configures the processor.
type Option func(*Processor)

// WithLogger logs to log (nil or absent: slog.Default()).
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

// WithTableCache sets how long and how many updated rows are held before
// they are written to local storage and the changelog (default
// stream.DefaultTableCacheOptions()).
func WithTableCache(o stream.TableCacheOptions) Option {
	return func(p *Processor) { p.writesOpts = o }
}

// WithDecoder decodes records with d, which knows the schema registry: plain
// protobuf records and Confluent-framed ones whose schema id d can check.
// The default knows no registry, so framed records are dead-lettered.
func WithDecoder(d *confluent.Decoder) Option { return func(p *Processor) { p.decoder = d } }

// WithWindows sets the granularities and grace period of windowed usage
// (default windows.Default(); no specs turn it off). w must be valid.
func WithWindows(w windows.Config) Option { return func(p *Processor) { p.windows = w } }

// WithTopIndex keeps idx up to date with the rows of the partitions this
// member holds (top.Indexing over its table storage), so the member can list
// its clients by total calls (routing.Worker serves them).
func WithTopIndex(idx *top.Index) Option { return func(p *Processor) { p.top = idx } }

// WithWriteFence writes table rows and closed buckets only while fence
// succeeds (stream.Fence): a worker fences with its group lease.
func WithWriteFence(fence func() error) Option { return func(p *Processor) { p.fenceCheck = fence } }

// WithClock sets the processing-time clock (default time.Now), the event
// time of events without a request time.
func WithClock(now func() time.Time) Option { return func(p *Processor) { p.now = now } }

// New returns the usage processor.
func New(opts ...Option) *Processor {
	p := &Processor{log: slog.Default(), cache: newValueCache(DefaultValueCache), windows: windows.Default(), now: time.Now,
		clientRetention: DefaultClientRetention, decoder: confluent.NewDecoder(nil, confluent.Subject),
		writesOpts: stream.DefaultTableCacheOptions()}
	for _, o := range opts {
		o(p)
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	p.writes = stream.NewTableCache(Group, new(codecs.ClientUsage), p.writesOpts, stream.WithLogger(p.log))
	if p.fenceCheck != nil {
		p.fence = stream.NewFence(p.fenceCheck, "usage table and windowed topics", p.log)
		p.writes.SetFence(p.fence)
	}
	p.windowTopics = make(map[int64]goka.Stream, len(p.windows.Specs))
	for _, s := range p.windows.Specs {
		p.windowTopics[int64(s.Step/time.Second)] = goka.Stream(windows.Topic(s.Step))
	}
	return p
}

// Windows is the windowing the processor applies.
func (p *Processor) Windows() windows.Config { return p.windows }

// Run runs a member of the group until ctx ends, with its local storage
// under dataDir, rebuilding it when Kafka goes away (stream.Run).
func (p *Processor) Run(ctx context.Context, cfg kafka.Config, dataDir string, onStart func(*goka.Processor)) error {
	n, err := cfg.TopicPartitions(ctx, string(codecs.ActivityTopic))
	if err != nil {
		return err
	}
	p.SetPartitions(n)
	if p.clientRetention > 0 {
		em, err := p.newJanitorEmitter(cfg)
		if err != nil {
			p.log.Warn("janitor off: no producer for the control topic", "err", err)
		} else {
			jctx, stop := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); p.janitor(jctx, em) }()
			defer func() { stop(); <-done; _ = em.Finish() }()
		}
	}
	if p.joins {
		pctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); p.pruneJoins(pctx) }()
		defer func() { stop(); <-done }()
	}
	err = stream.Run(ctx, cfg, p, dataDir, onStart, stream.WithLogger(p.log))
	s := p.Stats()
	p.log.Info("usage group stopped", "processed", s.Processed, "replays_skipped", s.Replays,
		"dead_lettered", s.DeadLettered, "rekeyed", s.Rekeyed)
	return err
}

// PartitionKey places the windowed topics' records by their client
// (windows.PartitionKey), so a client's closed buckets sit in the partition
// that holds the client in Users and the table, where the member owning the
// client joins them (stream.KeyPlacer); other records by their whole key.
func (p *Processor) PartitionKey(topic string) func(key []byte) []byte {
	if windows.IsTopic(topic) {
		return windows.PartitionKey
	}
	return nil
}

// SetPartitions tells the processor how many partitions the input topic
// has, so it can tell records that landed in another partition than the one
// its partitioner gives their client (Run finds it out from Kafka).
func (p *Processor) SetPartitions(n int) { p.partitions.Store(int32(n)) }

// WrapStorage stacks the group's layers over the storage goka opens for a
// partition (stream.StorageWrapper), innermost first: the top-clients index
// follows the table's rows (WithTopIndex); the registry keeps the table's
// partitions and the joined windowed ones open for reads outside goka's
// callbacks; the row writer, outermost, writes where goka writes.
func (p *Processor) WrapStorage(b storage.Builder) storage.Builder {
	var index tablestore.Layer
	if p.top != nil {
		index = top.Indexing(string(Table), p.top)
	}
	return tablestore.Stack(b,
		index,
		p.open.Layer(p.readsOutsideGoka),
		p.writes.WrapStorage,
	)
}

// readsOutsideGoka is whether the group reads topic's storage outside
// goka's callbacks: the table's (the janitor) and, with WithWindowJoins,
// the joined windowed topics' (ScanWindow, the pruner).
func (p *Processor) readsOutsideGoka(topic string) bool {
	return topic == string(Table) || p.joins && windows.IsTopic(topic)
}

// UseProducer hands the processor's producer to the row writer
// (stream.ProducerUser).
func (p *Processor) UseProducer(pr goka.Producer) { p.writes.UseProducer(pr) }

// Unwritten is how many updated rows wait to be written or acknowledged.
func (p *Processor) Unwritten() int { return p.writes.Unwritten() }

// Rebalanced drops the value cache and the alerts fired (alerts.Evaluator):
// another member may have counted for a client while this one did not own
// its partition.
func (p *Processor) Rebalanced(a goka.Assignment) {
	if p.cache != nil {
		p.cache.rebalanced(a)
	}
	p.alerts.Rebalanced()
}

// Stats returns the counters.
func (p *Processor) Stats() Stats {
	return Stats{Processed: p.processed.Load(), Replays: p.replays.Load(), DeadLettered: p.deadLettered.Load(), Rekeyed: p.rekeyed.Load(),
		Late: p.late.Load(), Emitted: p.emitted.Load(), Expired: p.expired.Load()}
}

// Counters are the group's metrics.
func (p *Processor) Counters() []metrics.Counter {
	return []metrics.Counter{
		{Name: "usage_events_processed_total", Help: "Activity events counted into the usage table.", Value: p.processed.Load},
		{Name: "usage_replays_skipped_total", Help: "Activity events skipped because their offset was already applied.", Value: p.replays.Load},
		{Name: "usage_dead_lettered_total", Help: "Activity records sent to the dead-letter topic.", Value: p.deadLettered.Load},
		{Name: "usage_rekeyed_total", Help: "Activity events that arrived under another key or partition than their client's and were sent on to its partition.", Value: p.rekeyed.Load},
		{Name: "usage_late_events_dropped_total", Help: "Activity events not counted in a windowed bucket because it had closed (once per granularity); they are in the all-time counts.", Value: p.late.Load},
		{Name: "usage_windows_emitted_total", Help: "Closed usage buckets emitted to the windowed topics, repeats included.", Value: p.emitted.Load},
		{Name: "usage_clients_expired_total", Help: "Rows of clients not seen for the client retention, deleted.", Value: p.expired.Load},
	}
}

// Graph is the group graph: Users in (raw bytes, so one undecodable record is
// dead-lettered instead of stopping the group), the loopback that re-keys
// events by client, the usage table persisted.
func (p *Processor) Graph() *goka.GroupGraph {
	edges := []goka.Edge{
		goka.Input(codecs.ActivityTopic, new(codec.Bytes), p.process),
		goka.Loop(new(codecs.Rekeyed), p.processRekeyed),
		goka.Input(ControlTopic, new(codecs.Expire), p.expire),
		goka.Output(DeadLetterTopic, new(codec.Bytes)),
		goka.Persist(new(codecs.ClientUsage)),
	}
	for _, s := range p.windows.Specs {
		edges = append(edges, goka.Output(goka.Stream(windows.Topic(s.Step)), new(codecs.WindowCounts)))
	}
	edges = append(edges, p.windowJoins()...)
	if p.alerts != nil {
		edges = append(edges, goka.Output(alerts.Topic, alerts.AlertCodec{}))
	}
	return goka.DefineGroup(Group, edges...)
}

// process is the goka callback for one activity record.
func (p *Processor) process(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	ev, err := p.decode(ctx, raw)
	if err != nil {
		p.deadLetter(ctx, raw, "undecodable: "+err.Error())
		return
	}
	client := codecs.ClientOf(ev)
	if client == "" {
		p.deadLetter(ctx, raw, "no client")
		return
	}
	if client != ctx.Key() || !p.ownPartition(client, ctx.Partition()) {
		// This row is not the client's (the original producer keys by its
		// own hostname), or this partition is not where the table keeps the
		// client (librdkafka partitions by CRC32): counting here would split
		// the client's counts. The loopback delivers it to the client's row,
		// with this position, so a replay that sends it again is skipped.
		p.rekeyed.Add(1)
		ctx.Loopback(client, &activitypb.Rekeyed{Event: raw, SourcePartition: ctx.Partition(), SourceOffset: ctx.Offset()})
		return
	}
	p.count(ctx, client, ev, Position{Partition: ctx.Partition(), Offset: ctx.Offset()})
}

// processRekeyed counts an event the loopback delivered to its client's row.
func (p *Processor) processRekeyed(ctx goka.Context, msg any) {
	r, _ := msg.(*activitypb.Rekeyed)
	ev, err := p.decode(ctx, r.GetEvent())
	if err != nil || codecs.ClientOf(ev) != ctx.Key() {
		// Only this group writes the loop topic; it decoded the event before.
		p.deadLetter(ctx, r.GetEvent(), "re-keyed record does not decode to its key's client")
		return
	}
	p.count(ctx, ctx.Key(), ev, Position{Partition: r.GetSourcePartition(), Offset: r.GetSourceOffset(), Rekeyed: true})
}

// decode decodes a plain or Confluent-framed record. While the schema
// registry cannot be reached to check an unknown schema id it waits and
// retries, holding the partition as an unreachable database would: the
// record is not poison, and dead-lettering it would lose it from the counts.
func (p *Processor) decode(ctx goka.Context, raw []byte) (*activitypb.BackendApiActivity, error) {
	backoff := 100 * time.Millisecond
	for {
		ev, err := p.decoder.DecodeContext(ctx.Context(), raw)
		if !errors.Is(err, confluent.ErrRegistryUnavailable) {
			return ev, err
		}
		p.log.Warn("schema registry unreachable; holding the partition", "partition", ctx.Partition(), "offset", ctx.Offset(), "err", err, "retry_in", backoff)
		select {
		case <-ctx.Context().Done():
			// Not committed: the record is read again after the restart.
			ctx.Fail(err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// ownPartition is false when client belongs in another partition than the
// record's, as the group's partitioner (Kafka's murmur2) places it.
func (p *Processor) ownPartition(client string, partition int32) bool {
	n := p.partitions.Load()
	return n == 0 || kafka.PartitionOf(client, int(n)) == partition
}

// count applies ev at pos to the client's row. The row is changed under its
// partition's lock in the row writer, which encodes rows from another
// goroutine, and written with the partition's next write; the input message
// is committed once that write is acknowledged.
func (p *Processor) count(ctx goka.Context, client string, ev *activitypb.BackendApiActivity, pos Position) {
	rows := p.writes.Lock(ctx)
	usage := p.row(ctx, rows, client)
	now := p.now()
	res := Apply(usage, ev, pos, p.windows, now)
	closed := res.Closed
	if !res.Applied {
		// The local value may be ahead of the changelog (a crash between the
		// local write and the changelog ack). Writing it again puts it in the
		// changelog before this input offset is committed, so a member that
		// rebuilds the table from the changelog cannot miss the event.
		closed = replayedClose(usage, pos)
	}
	// Closed buckets go out now, not with the row: a member that resumed
	// from a stall must not emit them from its stale row either. The
	// partition lost meanwhile, nothing is written and the event is read
	// again by its next owner (the row's change is dropped with the cache).
	if len(closed) > 0 && !p.fence.Await(ctx) {
		rows.Unlock()
		return
	}
	p.emitBuckets(ctx, client, usage, closed)
	if res.Applied {
		p.late.Add(uint64(res.Late))
		p.processed.Add(1)
	} else {
		p.replays.Add(1)
	}
	if p.alerts != nil {
		p.checkAlerts(ctx, client, usage, ev, res.Applied, res.Endpoint, now)
	}
	full := rows.Set(ctx, usage)
	rows.Unlock()
	if full {
		rows.Flush()
	}
}

// row is the client's row: updated and not yet written, recently used, or
// read from local storage. rows must be locked.
func (p *Processor) row(ctx goka.Context, rows *stream.CachedPartition, client string) *activitypb.ClientUsage {
	if v, ok := rows.Get(client); ok {
		return v.(*activitypb.ClientUsage)
	}
	usage, cached := p.cache.get(ctx.Partition(), client)
	if !cached {
		usage, _ = ctx.Value().(*activitypb.ClientUsage)
		if usage == nil {
			usage = &activitypb.ClientUsage{Client: client}
		}
		p.cache.put(ctx.Partition(), client, usage)
	}
	return usage
}

// emitBuckets puts closed buckets' final values on their windowed topics.
// A bucket of a granularity no longer configured has none and is dropped.
func (p *Processor) emitBuckets(ctx goka.Context, client string, usage *activitypb.ClientUsage, buckets []*activitypb.WindowBucket) {
	var names []string
	for _, b := range buckets {
		topic, ok := p.windowTopics[b.StepSeconds]
		if !ok {
			continue
		}
		if names == nil {
			names = EndpointNames(usage)
		}
		ctx.Emit(topic, windows.Key(client, b.StartUnix), &activitypb.WindowCounts{Endpoints: Counts(b, names), Total: b.Total,
			Status: codecs.StatusMapProto(Statuses(b, names))})
		p.emitted.Add(1)
	}
}

// Position is where an event was first read: its partition and offset in
// the activity topic, and whether it reached its client's row through the
// loopback (those positions are tracked apart: the loopback's delay reorders
// them against events read in place).
type Position struct {
	Partition int32
	Offset    int64
	Rekeyed   bool
}

// Apply adds ev, first read at pos, to usage: to its all-time counts and,
// with w's granularities, to its open bucket of each (see the package doc);
// now is the processing time, the event time of events without one. It
// leaves usage alone and returns Applied false when that position was
// already applied: after a crash goka replays uncommitted input, and
// counting it again would over-count.
func Apply(usage *activitypb.ClientUsage, ev *activitypb.BackendApiActivity, pos Position, w windows.Config, now time.Time) Result {
	applied := &usage.AppliedOffsets
	if pos.Rekeyed {
		applied = &usage.RekeyedOffsets
	}
	if last, ok := (*applied)[pos.Partition]; ok && pos.Offset <= last {
		return Result{}
	}
	if *applied == nil {
		*applied = make(map[int32]int64, 1)
	}
	(*applied)[pos.Partition] = pos.Offset
	if usage.Endpoints == nil {
		usage.Endpoints = make(map[string]*activitypb.EndpointUsage)
	}
	key := codecs.EndpointKey(ev)
	ep := usage.Endpoints[key]
	if ep == nil {
		if len(usage.Endpoints) >= MaxEndpoints {
			key = codecs.ServiceEndpointKey(ev.GetService(), ev.GetHttpMethod()+" "+OtherEndpoint)
			ep = usage.Endpoints[key]
		}
		if ep == nil {
			ep = new(activitypb.EndpointUsage)
			usage.Endpoints[key] = ep
		}
	}
	ep.Count++
	class, classed := codecs.StatusClass(ev.GetHttpStatus())
	switch {
	case classed && class < len(ep.StatusClasses):
		ep.StatusClasses[class]++ // no slice header written: no write barrier
	case classed:
		ep.StatusClasses = codecs.AddClass(ep.StatusClasses, class, 1)
	default:
		class = noStatus
	}
	usage.Total++
	seen := ev.GetRequestTime()
	if seen == nil {
		seen = timestamppb.New(now)
	}
	ep.LastSeen = seen
	if usage.FirstSeen == nil {
		usage.FirstSeen = seen
	}
	usage.LastSeen = seen
	res := Result{Applied: true}
	if len(w.Specs) > 0 {
		window(usage, w, eventTime(ev, now, w.Grace), ep, uint32(class), pos, &res)
		res.Endpoint = ep.WindowId
	}
	return res
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

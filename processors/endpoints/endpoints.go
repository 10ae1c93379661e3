// Package endpoints is the endpoints processor group: per endpoint, across
// all clients, its calls, status classes, latency distribution (a DDSketch
// with 1 % relative error) and distinct clients (a HyperLogLog), all-time
// and in the usage windows, in a changelog-backed group table keyed by
// endpoint (Faust's group_by, Kafka Streams' repartition).
//
// Events do not reach the group one by one: a worker's Aggregator reads its
// share of Users and, once per flush interval, writes one partial per
// endpoint and row (all-time, one bucket per granularity) to the partials
// topic, keyed by endpoint. Re-producing every event would double the
// Kafka traffic; the partials cost about one record per endpoint, row and
// second, whatever the rate. Exactness through crashes comes in two steps:
//   - the aggregator writes a flush's partials and commits the Users
//     offsets it read in one Kafka transaction (franz-go's
//     GroupTransactSession), so every event is in exactly one committed
//     partial; a crash or rebalance aborts the open flush and the events
//     are read again;
//   - the group reads the partials read_committed and skips one it merged
//     before (goka replays uncommitted input) by the Users offsets each
//     partial and row carry (Row.Merge).
//
// How and why: README, "Endpoints".
package endpoints

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"golang.org/x/sync/errgroup"

	"github.com/inarious/inarious/codecs/confluent"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/metrics"
	"github.com/inarious/inarious/internal/stream"
	"github.com/inarious/inarious/internal/tablestore"
	"github.com/inarious/inarious/internal/windows"
)

// Processor is one member of the endpoints group and its aggregator.
type Processor struct {
	log     *slog.Logger
	windows windows.Config
	agg     *Aggregator
	now     func() time.Time

	merged  atomic.Uint64
	replays atomic.Uint64
	invalid atomic.Uint64
	pruned  atomic.Uint64
	// open holds the table's partitions goka holds open, for the janitor
	// and the query endpoint.
	open tablestore.Registry
	// layers are storage layers of the caller's (an index of the rows).
	layers []tablestore.Layer
}

// Option configures the processor.
type Option func(*Processor)

// WithLogger logs to log (nil or absent: slog.Default()).
func WithLogger(log *slog.Logger) Option { return func(p *Processor) { p.log = log } }

// WithDecoder decodes Users' records with d (see usage.WithDecoder).
func WithDecoder(d *confluent.Decoder) Option { return func(p *Processor) { p.agg.decoder = d } }

// WithWindows sets the granularities and grace (default windows.Default();
// no specs keep all-time rows only). w must be valid.
func WithWindows(w windows.Config) Option { return func(p *Processor) { p.windows = w } }

// WithFlushInterval sets how long the aggregator counts before it writes
// (default DefaultFlushInterval).
func WithFlushInterval(d time.Duration) Option { return func(p *Processor) { p.agg.flush = d } }

// WithTransactionalID names the aggregator's transactions. A member that
// restarts under the same ID ends the transaction it left open at once;
// under another, its partials wait up to 10 s for it to time out. IDs
// must differ between live members (default: host name and process ID).
func WithTransactionalID(id string) Option { return func(p *Processor) { p.agg.txnID = id } }

// WithStorageLayer adds a layer to the group's local storage, innermost
// (it filters by topic itself): a worker serving routed reads indexes its
// partitions' rows with internal/endpointindex.
func WithStorageLayer(l tablestore.Layer) Option {
	return func(p *Processor) { p.layers = append(p.layers, l) }
}

// WithClock sets the processing-time clock (default time.Now).
func WithClock(now func() time.Time) Option { return func(p *Processor) { p.now = now } }

// New returns the endpoints processor.
func New(opts ...Option) *Processor {
	host, _ := os.Hostname()
	p := &Processor{log: slog.Default(), windows: windows.Default(), now: time.Now,
		agg: &Aggregator{decoder: confluent.NewDecoder(nil, confluent.Subject), flush: DefaultFlushInterval,
			txnID: "inarious-endpoints-" + host + "-" + strconv.Itoa(os.Getpid())}}
	for _, o := range opts {
		o(p)
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	p.agg.log = p.log.With("part", "aggregator")
	p.agg.windows = p.windows
	p.agg.now = p.now
	return p
}

// Topics the group reads and writes (stream.Component).
func (p *Processor) Topics() []kafka.TopicSpec { return Topics() }

// Windows is the windowing the group keeps.
func (p *Processor) Windows() windows.Config { return p.windows }

// Rebalanced does nothing: the group keeps no cache (stream.Group).
func (p *Processor) Rebalanced(goka.Assignment) {}

// Run runs the aggregator and a member of the group until ctx ends, with
// the group's local storage under dataDir.
func (p *Processor) Run(ctx context.Context, cfg kafka.Config, dataDir string, onStart func(*goka.Processor)) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.agg.Run(gctx, cfg) })
	if len(p.windows.Specs) > 0 {
		g.Go(func() error { return p.janitor(gctx, cfg) })
	}
	g.Go(func() error {
		return stream.Run(gctx, cfg, p, dataDir, onStart, stream.WithLogger(p.log),
			stream.WithProcessorOptions(goka.WithHasher(Hasher)))
	})
	err := g.Wait()
	a, s := p.agg.Stats(), p.Stats()
	p.log.Info("endpoints group stopped", "events", a.Events, "flushes", a.Flushes, "aborted", a.Aborted,
		"partials_merged", s.Merged, "replays_skipped", s.Replays)
	return err
}

// Graph is the group graph: partials in (raw bytes, so an undecodable one
// is logged and skipped instead of stopping the group), the table persisted.
func (p *Processor) Graph() *goka.GroupGraph {
	return goka.DefineGroup(Group,
		goka.Input(PartialsTopic, new(codec.Bytes), p.merge),
		goka.Persist(RowCodec{}),
	)
}

// merge applies a partial to its row.
func (p *Processor) merge(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	part, err := DecodePartial(raw)
	if err != nil {
		p.invalid.Add(1)
		p.log.Warn("skipping a partial that does not decode", "partition", ctx.Partition(), "offset", ctx.Offset(), "err", err)
		return
	}
	if part.Prune {
		p.prune(ctx)
		return
	}
	row, _ := ctx.Value().(*Row)
	if row == nil {
		row = NewRow()
		row.Step, row.Start = part.Step, part.Start
	}
	if !row.Merge(part) {
		p.replays.Add(1)
		// Local storage may be ahead of the changelog (a crash between
		// goka's local write and the changelog's ack): writing the row
		// again puts it in the changelog before this partial is committed.
		ctx.SetValue(row)
		return
	}
	p.merged.Add(1)
	ctx.SetValue(row)
}

// Stats are the group's counters since the process started.
type Stats struct {
	Merged  uint64 // partials merged into rows
	Replays uint64 // partials skipped: merged before
	Invalid uint64 // partials that did not decode
	Pruned  uint64 // bucket rows deleted past their retention
}

// Stats returns the group's counters.
func (p *Processor) Stats() Stats {
	return Stats{Merged: p.merged.Load(), Replays: p.replays.Load(), Invalid: p.invalid.Load(), Pruned: p.pruned.Load()}
}

// Stats returns the aggregator's counters.
func (a *Aggregator) Stats() AggregatorStats {
	return AggregatorStats{Events: a.events.Load(), Late: a.late.Load(), Skipped: a.skipped.Load(), Partials: a.partials.Load(),
		Flushes: a.flushes.Load(), Aborted: a.aborted.Load()}
}

// AggregatorStats returns the aggregator's counters.
func (p *Processor) AggregatorStats() AggregatorStats { return p.agg.Stats() }

// Counters are the group's metrics.
func (p *Processor) Counters() []metrics.Counter {
	a := p.agg
	return []metrics.Counter{
		{Name: "endpoints_events_aggregated_total", Help: "Activity events counted into committed endpoint partials.", Value: a.events.Load},
		{Name: "endpoints_late_events_total", Help: "Activity events not counted in a bucket of one granularity: it was past its grace period (they are in the all-time rows).", Value: a.late.Load},
		{Name: "endpoints_records_skipped_total", Help: "Activity records the aggregator did not count: undecodable or without a client.", Value: a.skipped.Load},
		{Name: "endpoints_partials_written_total", Help: "Partials written in committed transactions.", Value: a.partials.Load},
		{Name: "endpoints_flushes_total", Help: "Aggregator transactions committed.", Value: a.flushes.Load},
		{Name: "endpoints_flushes_aborted_total", Help: "Aggregator flushes aborted (rebalance, produce error, registry away); their events are read again.", Value: a.aborted.Load},
		{Name: "endpoints_partials_merged_total", Help: "Partials merged into the endpoints table.", Value: p.merged.Load},
		{Name: "endpoints_replays_skipped_total", Help: "Partials skipped because they were merged before.", Value: p.replays.Load},
		{Name: "endpoints_partials_invalid_total", Help: "Partials that did not decode.", Value: p.invalid.Load},
		{Name: "endpoints_buckets_pruned_total", Help: "Bucket rows deleted past their retention.", Value: p.pruned.Load},
	}
}

// Run runs the aggregator until ctx ends, starting a new session after a
// pause when Kafka fails it.
func (a *Aggregator) Run(ctx context.Context, cfg kafka.Config) error {
	return stream.RetrySessions(ctx, a.log, func(ctx context.Context) error { return a.run(ctx, cfg) })
}

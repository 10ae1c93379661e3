package endpoints

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/codecs/confluent"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/sketch"
	"github.com/inarious/inarious/internal/stream"
	"github.com/inarious/inarious/internal/windows"
)

// DefaultFlushInterval is how long the aggregator counts before it writes
// its partials: the endpoints table lags Users by about this much, and a
// member writes about one partial per endpoint, granularity and interval.
const DefaultFlushInterval = time.Second

// Aggregator consumes Users in the consumer group AggregatorGroup and, per
// flush interval, writes what it counted of each endpoint as partials,
// in one Kafka transaction with the offsets it read (see the package doc).
type Aggregator struct {
	log     *slog.Logger
	decoder *confluent.Decoder
	windows windows.Config
	flush   time.Duration
	txnID   string
	now     func() time.Time

	events   atomic.Uint64
	late     atomic.Uint64
	skipped  atomic.Uint64
	partials atomic.Uint64
	flushes  atomic.Uint64
	aborted  atomic.Uint64
}

// AggregatorStats are counters since the process started.
type AggregatorStats struct {
	Events   uint64 // events counted in a committed flush
	Late     uint64 // (event, granularity) pairs not in a bucket: it was past its grace
	Skipped  uint64 // records not counted: undecodable or without a client (the usage group dead-letters them)
	Partials uint64 // partials written in committed flushes
	Flushes  uint64 // committed transactions
	Aborted  uint64 // flushes aborted (a rebalance, a produce error): their events are read again
}

// run is one session of the aggregator: it ends with ctx (after a last
// flush) or with an error the caller retries after a pause.
func (a *Aggregator) run(ctx context.Context, cfg kafka.Config) error {
	n, err := cfg.TopicPartitions(ctx, string(PartialsTopic))
	if err != nil {
		return err
	}
	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.TransactionalID(a.txnID),
		kgo.TransactionTimeout(stream.TransactionTimeout),
		kgo.ConsumerGroup(AggregatorGroup),
		kgo.SessionTimeout(kafka.SessionTimeout),
		kgo.HeartbeatInterval(kafka.HeartbeatInterval),
		kgo.ConsumeTopics(string(codecs.ActivityTopic)),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(kafka.FetchWait),
		kgo.ProducerLinger(0),
		kgo.RecordPartitioner(keyPartitioner(n)),
	)
	if err != nil {
		return fmt.Errorf("endpoints aggregator: %w", err)
	}
	defer sess.Close()
	acc := newAccumulator(a.windows)
	// due is when the counts held must be written at the latest. Once the
	// member has read all there is, it writes sooner, at most every
	// catchUpGap, so the table trails a quiet Users by about that.
	var due, lastFlush time.Time
	caughtUp := false
	catchUpGap := a.flush / 10
	flushAt := func() time.Time {
		if caughtUp && lastFlush.Add(catchUpGap).Before(due) {
			return lastFlush.Add(catchUpGap)
		}
		return due
	}
	for {
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if !acc.empty() {
			pctx, cancel = context.WithDeadline(ctx, flushAt())
		}
		fetches := sess.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			// Count what was read with this poll too: the last flush
			// commits the offsets of everything polled.
			fctx, stop := context.WithTimeout(context.WithoutCancel(ctx), stream.EndTimeout)
			defer stop()
			if err := a.addAll(fctx, acc, fetches); err != nil {
				return a.abort(ctx, sess, acc)
			}
			return a.flushOrAbort(ctx, sess, acc)
		}
		if err := stream.FetchFailure(fetches, a.log); err != nil {
			return err
		}
		wasEmpty := acc.empty()
		if err := a.addAll(ctx, acc, fetches); err != nil {
			// The registry cannot be reached: nothing read since the last
			// flush may be skipped, so read it again later.
			a.log.Warn("schema registry unreachable; reading again from the last flush", "err", err)
			if err := a.abort(ctx, sess, acc); err != nil {
				return err
			}
			if err := stream.Sleep(ctx, time.Second); err != nil {
				return nil
			}
			continue
		}
		if wasEmpty && !acc.empty() {
			due = a.now().Add(a.flush)
		}
		if fetches.NumRecords() > 0 {
			caughtUp = atHighWatermark(fetches)
		}
		if !acc.empty() && !a.now().Before(flushAt()) {
			if err := a.flushOrAbort(ctx, sess, acc); err != nil {
				return err
			}
			lastFlush = a.now()
		}
	}
}

// atHighWatermark reports whether the fetch read every partition it
// returned up to its high watermark: nothing more was there to read.
func atHighWatermark(fetches kgo.Fetches) bool {
	at := true
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if n := len(p.Records); n > 0 && p.Records[n-1].Offset+1 < p.HighWatermark {
			at = false
		}
	})
	return at
}

// addAll counts the fetched records; it stops at a record that cannot be
// decoded for want of the schema registry.
func (a *Aggregator) addAll(ctx context.Context, acc *accumulator, fetches kgo.Fetches) error {
	var err error
	ev := &acc.event
	fetches.EachRecord(func(r *kgo.Record) {
		if err != nil {
			return
		}
		derr := a.decoder.DecodeInto(ctx, r.Value, ev)
		switch {
		case errors.Is(derr, confluent.ErrRegistryUnavailable):
			err = derr
			return
		case derr != nil || codecs.ClientOf(ev) == "":
			a.skipped.Add(1)
			acc.read(r.Partition, r.Offset)
			return
		}
		acc.add(ev, r.Partition, r.Offset, a.now())
	})
	return err
}

// flushOrAbort writes the partials and the offsets read in one
// transaction. A rebalance since the last flush aborts it, as does a
// failed produce: the session then rewinds to the committed offsets and the
// events are counted again, by this member or the partition's new owner.
func (a *Aggregator) flushOrAbort(ctx context.Context, sess *kgo.GroupTransactSession, acc *accumulator) error {
	if acc.empty() {
		return nil
	}
	// A transaction is ended even when the member is stopping: canceling
	// End would leave the client in an unknown state (kgo's docs).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stream.EndTimeout)
	defer cancel()
	if err := sess.Begin(); err != nil {
		return err
	}
	var failed atomic.Pointer[error]
	records, err := acc.records()
	if err != nil {
		return err
	}
	for _, r := range records {
		sess.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
		})
	}
	try := kgo.TryCommit
	if failed.Load() != nil {
		try = kgo.TryAbort
	}
	committed, err := sess.End(ctx, try)
	if perr := failed.Load(); perr != nil && committed {
		// A record failed after End flushed: Kafka refuses to commit a
		// transaction with a failed produce, so this cannot happen.
		return fmt.Errorf("endpoints aggregator: committed despite a failed partial: %w", *perr)
	}
	events, late := acc.events, acc.late
	acc.reset()
	if err != nil {
		a.aborted.Add(1)
		return fmt.Errorf("endpoints aggregator: end transaction: %w", err)
	}
	if !committed {
		a.aborted.Add(1)
		if perr := failed.Load(); perr != nil {
			a.log.Warn("partials not written; reading again from the last flush", "err", *perr)
		}
		return nil
	}
	a.flushes.Add(1)
	a.events.Add(events)
	a.late.Add(late)
	a.partials.Add(uint64(len(records)))
	return nil
}

// abort drops what was counted since the last flush and rewinds to it.
func (a *Aggregator) abort(ctx context.Context, sess *kgo.GroupTransactSession, acc *accumulator) error {
	acc.reset()
	a.aborted.Add(1)
	return stream.AbortTransaction(ctx, sess)
}

// accumulator is what a member counted since its last flush: per
// endpoint, its all-time partial and the buckets its calls fell in, and
// per partition the last offset read.
type accumulator struct {
	windows   windows.Config
	endpoints map[routeKey]*endpointAcc
	offsets   map[int32]int64
	events    uint64
	late      uint64
	// streamTime is, per partition, the latest event time seen: a bucket
	// that ended a grace period before it is closed. It outlives flushes.
	streamTime map[int32]int64
	// event is decoded into for every record: its strings point into the
	// record (confluent.Decoder.DecodeInto), so what is kept is cloned.
	event activitypb.BackendApiActivity
}

// routeKey finds an endpoint's accumulator from the decoded event's own
// strings, without building its name for every event.
type routeKey struct{ service, method, route, path string }

// endpointAcc is one endpoint's partials. Its clients are kept as hashes
// with the rows they called in (bit 0 the all-time row, bit i+1
// buckets[i]) and added to the rows' sketches once per flush: a client
// calling many times costs one HyperLogLog insert per row, not one per
// call.
type endpointAcc struct {
	name    string
	all     *Row
	buckets []bucketAcc
	clients map[uint64]uint64
}

type bucketAcc struct {
	step  time.Duration
	start int64
	row   *Row
}

// maxTrackedBuckets is how many buckets of one endpoint and flush the
// client bitmask tracks; calls of further buckets (a replay of old events
// spread over hours) add their clients to the sketch at once.
const maxTrackedBuckets = 63

func newAccumulator(w windows.Config) *accumulator {
	return &accumulator{windows: w, endpoints: map[routeKey]*endpointAcc{}, offsets: map[int32]int64{}, streamTime: map[int32]int64{}}
}

func (acc *accumulator) empty() bool { return len(acc.offsets) == 0 }

func (acc *accumulator) reset() {
	clear(acc.endpoints)
	acc.offsets = map[int32]int64{}
	acc.events, acc.late = 0, 0
}

// read records that the record at (partition, offset) was read.
func (acc *accumulator) read(partition int32, offset int64) { acc.offsets[partition] = offset }

// add counts ev, read at (partition, offset), in its endpoint's all-time
// partial and in its bucket of each granularity not past its grace.
func (acc *accumulator) add(ev *activitypb.BackendApiActivity, partition int32, offset int64, now time.Time) {
	acc.read(partition, offset)
	acc.events++
	ea := acc.endpoint(ev)
	client := sketch.HashClient(codecs.ClientOf(ev))
	at := eventTime(ev.GetRequestTime(), now)
	ea.all.addCall(ev, at)
	mask := uint64(1)
	if len(acc.windows.Specs) > 0 {
		t := at.UnixNano()
		if t > acc.streamTime[partition] {
			acc.streamTime[partition] = t
		}
		stream := acc.streamTime[partition]
		for _, s := range acc.windows.Specs {
			start := windows.StartUnix(t, s.Step)
			if time.Unix(start, 0).Add(s.Step+acc.windows.Grace).UnixNano() <= stream {
				acc.late++
				continue
			}
			i := ea.bucket(s.Step, start)
			ea.buckets[i].row.addCall(ev, at)
			if i < maxTrackedBuckets {
				mask |= 1 << (i + 1)
			} else {
				ea.buckets[i].row.Clients.AddHash(client)
			}
		}
	}
	ea.clients[client] |= mask
}

func (acc *accumulator) endpoint(ev *activitypb.BackendApiActivity) *endpointAcc {
	k := routeKey{service: ev.GetService(), method: ev.GetHttpMethod(), route: ev.GetRoute()}
	if k.route == "" {
		k.path = ev.GetEndpoint()
	}
	ea := acc.endpoints[k]
	if ea == nil {
		// The event's strings point into the record: keep copies.
		k = routeKey{service: strings.Clone(k.service), method: strings.Clone(k.method), route: strings.Clone(k.route), path: strings.Clone(k.path)}
		ea = &endpointAcc{name: strings.Clone(endpointName(codecs.EndpointKey(ev))), all: newPartialRow(), clients: map[uint64]uint64{}}
		acc.endpoints[k] = ea
	}
	return ea
}

// bucket is the index in ea.buckets of the bucket of step starting at start.
func (ea *endpointAcc) bucket(step time.Duration, start int64) int {
	for i, b := range ea.buckets {
		if b.start == start && b.step == step {
			return i
		}
	}
	r := newPartialRow()
	r.Step, r.Start = step, time.Unix(start, 0).UTC()
	ea.buckets = append(ea.buckets, bucketAcc{step: step, start: start, row: r})
	return len(ea.buckets) - 1
}

// newPartialRow is an empty row of one flush: its latency sketch is a
// short-lived one, cheap for the few calls most partials hold.
func newPartialRow() *Row {
	return &Row{Latency: sketch.NewShortLivedLatency(), Clients: sketch.NewDistinct()}
}

// eventTime is when the call was made: its request time, or now for
// producers that send none.
func eventTime(ts *timestamppb.Timestamp, now time.Time) time.Time {
	if ts == nil {
		return now
	}
	return ts.AsTime()
}

// addCall counts one call in r, but not its client (endpointAcc does).
func (r *Row) addCall(ev *activitypb.BackendApiActivity, at time.Time) {
	r.Calls++
	if class, ok := codecs.StatusClass(ev.GetHttpStatus()); ok {
		r.Status[class]++
	}
	// Producers of the original schema send neither status nor duration:
	// their calls have no latency, rather than a latency of 0.
	if ev.GetDurationUs() > 0 || ev.GetHttpStatus() != 0 {
		r.Latency.Add(ev.GetDurationUs())
	}
	if r.FirstSeen.IsZero() || at.Before(r.FirstSeen) {
		r.FirstSeen = at
	}
	if at.After(r.LastSeen) {
		r.LastSeen = at
	}
}

// records are the partials as records of the partials topic, each with
// the offsets of every partition read since the last flush. Two
// accumulators of one endpoint (a route and a path that template alike)
// are merged first: a key has one partial per flush.
func (acc *accumulator) records() ([]*kgo.Record, error) {
	rows := map[string]*Row{}
	put := func(key string, r *Row) {
		if have := rows[key]; have != nil {
			have.add(r)
			return
		}
		rows[key] = r
	}
	for _, ea := range acc.endpoints {
		for h, mask := range ea.clients {
			if mask&1 != 0 {
				ea.all.Clients.AddHash(h)
			}
			for i := range min(len(ea.buckets), maxTrackedBuckets) {
				if mask&(1<<(i+1)) != 0 {
					ea.buckets[i].row.Clients.AddHash(h)
				}
			}
		}
		put(ea.name, ea.all)
		for _, b := range ea.buckets {
			put(BucketKey(ea.name, b.step, b.start), b.row)
		}
	}
	out := make([]*kgo.Record, 0, len(rows))
	for key, r := range rows {
		v, err := (&Partial{Row: *r, Offsets: acc.offsets}).marshal()
		if err != nil {
			return nil, err
		}
		out = append(out, &kgo.Record{Topic: string(PartialsTopic), Key: []byte(key), Value: v})
	}
	return out, nil
}

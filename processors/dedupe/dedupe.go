// Package dedupe is the dedupe stage: events that reach Inarious through its
// ingest endpoints (OTLP spans, POST /events) go to IngestTopic, because
// exporters retry whole batches after a lost response or a 429/503; the
// stage forwards the first copy of each event id to Users and drops the
// copies that follow within the dedupe window.
//
// Where the state lives, and why there: marking an id as seen must happen
// in the same update that lets its event be counted, never before, or an
// event whose forward failed would be lost for good (openmeterio/openmeter
// #5118). So each member reads its share of IngestTopic in a franz-go
// GroupTransactSession and writes, in one Kafka transaction per flush, the
// events it forwards to Users, one record per partition listing the ids
// they carry to SeenTopic, and the offsets it read. A crash or rebalance
// aborts the open flush: nothing of it was forwarded, no id of it marked.
// A member taking a partition over rebuilds its set from SeenTopic
// (read_committed), whose retention is the window.
//
// Cost: 11 to 17 bytes of memory per id seen in the window (a hash table
// of 8-byte slots, seen.go), 8 bytes of disk in SeenTopic; WithMaxIDs caps
// the memory, forgetting the oldest ids early.
// An id is unique per client and service; without one an event is not
// deduplicated. See the README, "Retries are counted once".
package dedupe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/codecs/confluent"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/metrics"
	"github.com/inarious/inarious/internal/stream"
)

// Names of the stage's topics and consumer group.
const (
	// IngestTopic carries the ingest endpoints' events, keyed and
	// partitioned like Users.
	IngestTopic goka.Stream = "Users-ingest"
	// SeenTopic carries, per flush and partition, the ids first seen.
	SeenTopic = "dedupe-seen"
	// Group is the consumer group in which workers share IngestTopic.
	Group = "dedupe"
)

// DefaultWindow is how long an event id is remembered.
const DefaultWindow = 24 * time.Hour

// DefaultMaxIDs caps the ids a member holds: at most 425 MB.
const DefaultMaxIDs = 25_000_000

// maxPoll bounds the events of one transaction.
const maxPoll = 10_000

// Stage is one member of the dedupe stage.
type Stage struct {
	log     *slog.Logger
	decoder *confluent.Decoder
	window  time.Duration
	maxIDs  int
	txnID   string
	now     func() time.Time
	advised sync.Once

	forwarded, duplicates, withoutID, flushes, aborted, restored, forgotten atomic.Uint64
}

// Option configures a Stage.
type Option func(*Stage)

// WithLogger logs to log.
func WithLogger(log *slog.Logger) Option { return func(s *Stage) { s.log = log } }

// WithDecoder decodes the ingest topic's records with d (framed or not).
func WithDecoder(d *confluent.Decoder) Option { return func(s *Stage) { s.decoder = d } }

// WithWindow sets how long an id is remembered (default DefaultWindow).
func WithWindow(d time.Duration) Option { return func(s *Stage) { s.window = d } }

// WithMaxIDs caps the ids a member holds (default DefaultMaxIDs; 0: no cap).
func WithMaxIDs(n int) Option { return func(s *Stage) { s.maxIDs = n } }

// WithTransactionalID names the member's transactions; a member restarted
// under the same ID ends the one it left open at once. IDs must differ
// between live members (default: host name and process ID).
func WithTransactionalID(id string) Option { return func(s *Stage) { s.txnID = id } }

// WithClock sets the clock of first-seen times (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Stage) { s.now = now } }

// New returns a member of the stage.
func New(opts ...Option) *Stage {
	host, _ := os.Hostname()
	s := &Stage{log: slog.Default(), decoder: confluent.NewDecoder(nil, confluent.Subject), window: DefaultWindow,
		maxIDs: DefaultMaxIDs, txnID: "inarious-dedupe-" + host + "-" + strconv.Itoa(os.Getpid()), now: time.Now}
	for _, o := range opts {
		o(s)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s
}

// Topics the stage reads and writes: both co-partitioned with Users, so an
// ingest partition's events go to the same partition of Users.
func (s *Stage) Topics() []kafka.TopicSpec {
	ingest := kafka.Stream(string(IngestTopic), 7*24*time.Hour)
	ingest.CoPartitionedWith = string(codecs.ActivityTopic)
	seen := kafka.Stream(SeenTopic, s.window+2*s.window/slicesPerWindow)
	seen.CoPartitionedWith = string(codecs.ActivityTopic)
	return []kafka.TopicSpec{kafka.Stream(string(codecs.ActivityTopic), 7*24*time.Hour), ingest, seen}
}

// Counters are the stage's metrics.
func (s *Stage) Counters() []metrics.Counter {
	return []metrics.Counter{
		{Name: "dedupe_events_forwarded_total", Help: "Ingested events forwarded to Users in committed transactions.", Value: s.forwarded.Load},
		{Name: "dedupe_duplicates_dropped_total", Help: "Ingested events dropped: their id was seen within the dedupe window.", Value: s.duplicates.Load},
		{Name: "dedupe_events_without_id_total", Help: "Ingested events forwarded without dedupe: they carry no id.", Value: s.withoutID.Load},
		{Name: "dedupe_flushes_total", Help: "Dedupe transactions committed.", Value: s.flushes.Load},
		{Name: "dedupe_flushes_aborted_total", Help: "Dedupe flushes aborted (rebalance, produce error, registry away); their events are read again.", Value: s.aborted.Load},
		{Name: "dedupe_ids_restored_total", Help: "Ids read back from the seen topic when a partition was taken over.", Value: s.restored.Load},
		{Name: "dedupe_ids_forgotten_early_total", Help: "Ids forgotten before the window ended because the member held more than its cap.", Value: s.forgotten.Load},
	}
}

// Run runs the member until ctx ends, starting a new session after a pause
// when Kafka fails one (stream.Component; it keeps no local storage).
func (s *Stage) Run(ctx context.Context, cfg kafka.Config, _ string, _ func(*goka.Processor)) error {
	err := stream.RetrySessions(ctx, s.log, func(ctx context.Context) error { return s.run(ctx, cfg) })
	s.log.Info("dedupe stage stopped", "forwarded", s.forwarded.Load(), "duplicates", s.duplicates.Load(), "aborted", s.aborted.Load())
	return err
}

// session is one session's state: the seen sets of the partitions restored
// since they were (re)assigned, and what the open flush adds.
type session struct {
	sets    map[int32]*seenSet
	pending map[int32][]uint64
	pendSet map[uint64]struct{}
	out     []*kgo.Record
	// reassigned are partitions assigned since the loop last looked: their
	// sets may be stale (another member owned them meanwhile).
	mu         sync.Mutex
	reassigned []int32
	event      activitypb.BackendApiActivity
}

func (ss *session) assigned(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	ss.mu.Lock()
	ss.reassigned = append(ss.reassigned, parts[string(IngestTopic)]...)
	ss.mu.Unlock()
}

// revoked frees the sets of partitions given up. The transact session calls
// it for the first revocation of a flush only, so it cannot be relied on
// for correctness: assigned can.
func (ss *session) revoked(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
	ss.assigned(ctx, cl, parts)
}

// dropReassigned forgets the sets of reassigned partitions.
func (ss *session) dropReassigned() {
	ss.mu.Lock()
	for _, p := range ss.reassigned {
		delete(ss.sets, p)
	}
	ss.reassigned = ss.reassigned[:0]
	ss.mu.Unlock()
}

func (ss *session) resetFlush() {
	clear(ss.pending)
	clear(ss.pendSet)
	ss.out = ss.out[:0]
}

func (s *Stage) run(ctx context.Context, cfg kafka.Config) error {
	n, err := cfg.TopicPartitions(ctx, string(IngestTopic))
	if err != nil {
		return err
	}
	if m, err := cfg.TopicPartitions(ctx, string(codecs.ActivityTopic)); err != nil {
		return err
	} else if m != n {
		return fmt.Errorf("dedupe: %s has %d partitions and %s %d: they must match", IngestTopic, n, codecs.ActivityTopic, m)
	}
	ss := &session{sets: map[int32]*seenSet{}, pending: map[int32][]uint64{}, pendSet: map[uint64]struct{}{}}
	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.TransactionalID(s.txnID),
		kgo.TransactionTimeout(stream.TransactionTimeout),
		kgo.ConsumerGroup(Group),
		kgo.SessionTimeout(kafka.SessionTimeout),
		kgo.HeartbeatInterval(kafka.HeartbeatInterval),
		kgo.ConsumeTopics(string(IngestTopic)),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(kafka.FetchWait),
		kgo.ProducerLinger(0),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.OnPartitionsAssigned(ss.assigned),
		kgo.OnPartitionsRevoked(ss.revoked),
		kgo.OnPartitionsLost(ss.revoked),
	)
	if err != nil {
		return fmt.Errorf("dedupe: %w", err)
	}
	defer sess.Close()
	reader, err := newSeenReader(cfg)
	if err != nil {
		return err
	}
	defer reader.Close()
	s.advised.Do(func() { stream.LogTxnRetryBackoff(ctx, reader, s.log) })
	for {
		fetches := sess.PollRecords(ctx, maxPoll)
		stopping := ctx.Err() != nil
		if err := stream.FetchFailure(fetches, s.log); err != nil {
			return err
		}
		if fetches.NumRecords() == 0 {
			if stopping {
				return nil
			}
			continue
		}
		if !stopping {
			fetches = topUp(ctx, sess, fetches, TopUpWait)
		}
		// At shutdown the records polled are still handled: the flush
		// commits the offsets of everything polled.
		ctx := ctx
		if stopping {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), stream.EndTimeout)
			defer cancel()
		}
		ss.dropReassigned()
		if err := s.decide(ctx, ss, reader, fetches); err != nil {
			if !errors.Is(err, confluent.ErrRegistryUnavailable) {
				return err
			}
			s.log.Warn("schema registry unreachable; reading again from the last flush", "err", err)
			if err := s.abort(ctx, sess, ss); err != nil || stopping {
				return err
			}
			if stream.Sleep(ctx, time.Second) != nil {
				return nil
			}
			continue
		}
		if err := s.flush(ctx, sess, ss); err != nil || stopping {
			return err
		}
	}
}

// TopUpWait is how long a flush waits for the events that arrived while the
// last one ran. kgo fetches again as soon as a poll takes the buffered
// fetch: during a transaction that fetch brings only the first few events,
// and those that come later would wait for one more transaction. The wait
// also lets the last transaction's markers land, which a new one's first
// produce would otherwise wait for. inarious-bench txn: from produce to
// visible read_committed, 10.2 → 4.9 ms p50 (BENCHMARKS.md, "Dedupe
// latency").
const TopUpWait = 3 * time.Millisecond

// topUp adds to fetches what one more poll brings within wait.
func topUp(ctx context.Context, sess *kgo.GroupTransactSession, fetches kgo.Fetches, wait time.Duration) kgo.Fetches {
	n := fetches.NumRecords()
	if n >= maxPoll {
		return fetches
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	// Polling past the wait yields only the context's error: nothing to add.
	if more := sess.PollRecords(ctx, maxPoll-n); more.NumRecords() > 0 {
		fetches = append(fetches, more...)
	}
	return fetches
}

// decide sorts the fetched events into forwarded and dropped.
func (s *Stage) decide(ctx context.Context, ss *session, reader *kgo.Client, fetches kgo.Fetches) error {
	var err error
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if err != nil || len(fp.Records) == 0 {
			return
		}
		set := ss.sets[fp.Partition]
		if set == nil {
			set, err = s.restore(ctx, reader, fp.Partition)
			if err != nil {
				return
			}
			ss.sets[fp.Partition] = set
		}
		for _, r := range fp.Records {
			if err = s.decideOne(ctx, ss, set, r); err != nil {
				return
			}
		}
	})
	return err
}

func (s *Stage) decideOne(ctx context.Context, ss *session, set *seenSet, r *kgo.Record) error {
	ev := &ss.event
	derr := s.decoder.DecodeInto(ctx, r.Value, ev)
	if errors.Is(derr, confluent.ErrRegistryUnavailable) {
		return derr
	}
	// An undecodable event is forwarded as it is: the usage group
	// dead-letters it, as any producer's.
	if derr == nil && ev.GetRequestId() != "" {
		id := eventID(codecs.ClientOf(ev), codecs.ServiceOf(ev), ev.GetRequestId())
		if _, pend := ss.pendSet[id]; pend || set.has(id) {
			s.duplicates.Add(1)
			return nil
		}
		ss.pendSet[id] = struct{}{}
		ss.pending[r.Partition] = append(ss.pending[r.Partition], id)
	} else if derr == nil {
		s.withoutID.Add(1)
	}
	ss.out = append(ss.out, &kgo.Record{Topic: string(codecs.ActivityTopic), Partition: r.Partition, Key: r.Key, Value: r.Value, Headers: r.Headers, Timestamp: r.Timestamp})
	return nil
}

// eventID is the 64-bit hash an event is known by: its id within its
// client and service. Collisions are negligible at the ids a window holds
// (about 1 in 10^5 for a billion ids per partition).
func eventID(client, service, id string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(client))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(service))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(id))
	return h.Sum64()
}

// flush forwards the decided events, marks their ids as seen and commits
// the offsets read, in one transaction; the ids join the sets only once it
// committed.
func (s *Stage) flush(ctx context.Context, sess *kgo.GroupTransactSession, ss *session) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stream.EndTimeout)
	defer cancel()
	at := s.now()
	if err := sess.Begin(); err != nil {
		return err
	}
	var failed atomic.Pointer[error]
	onDone := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.CompareAndSwap(nil, &err)
		}
	}
	for _, r := range ss.out {
		sess.Produce(ctx, r, onDone)
	}
	for p, ids := range ss.pending {
		sess.Produce(ctx, &kgo.Record{Topic: SeenTopic, Partition: p, Value: encodeSeen(at, ids)}, onDone)
	}
	try := kgo.TryCommit
	if failed.Load() != nil {
		try = kgo.TryAbort
	}
	committed, err := sess.End(ctx, try)
	forwarded := len(ss.out)
	if committed && err == nil {
		for p, ids := range ss.pending {
			ss.sets[p].add(at, ids)
		}
	}
	ss.resetFlush()
	if err != nil {
		s.aborted.Add(1)
		return fmt.Errorf("dedupe: end transaction: %w", err)
	}
	if !committed {
		s.aborted.Add(1)
		if perr := failed.Load(); perr != nil {
			s.log.Warn("events not forwarded; reading again from the last flush", "err", *perr)
		}
		return nil
	}
	s.flushes.Add(1)
	s.forwarded.Add(uint64(forwarded))
	s.log.Debug("dedupe flush", "forwarded", forwarded, "took", s.now().Sub(at))
	s.expire(ss, at)
	return nil
}

// expire forgets what the window (and the cap, shared by the partitions
// held) no longer keeps.
func (s *Stage) expire(ss *session, now time.Time) {
	capPer := 0
	if s.maxIDs > 0 {
		capPer = max(s.maxIDs/max(len(ss.sets), 1), 1)
	}
	for p, set := range ss.sets {
		if early := set.expire(now, capPer); early > 0 {
			if s.forgotten.Add(uint64(early)) == uint64(early) {
				s.log.Warn("dedupe ids forgotten before the window ended: more ids than the cap", "partition", p, "ids", early, "cap", s.maxIDs)
			}
		}
	}
}

// abort drops the open flush and rewinds to the last committed offsets.
func (s *Stage) abort(ctx context.Context, sess *kgo.GroupTransactSession, ss *session) error {
	ss.resetFlush()
	s.aborted.Add(1)
	return stream.AbortTransaction(ctx, sess)
}

// encodeSeen is a SeenTopic value: the flush time (Unix ns), then the ids,
// 8 bytes each, big-endian.
func encodeSeen(at time.Time, ids []uint64) []byte {
	b := make([]byte, 8, 8+8*len(ids))
	binary.BigEndian.PutUint64(b, uint64(at.UnixNano()))
	for _, id := range ids {
		b = binary.BigEndian.AppendUint64(b, id)
	}
	return b
}

func decodeSeen(b []byte) (time.Time, []uint64, error) {
	if len(b) < 8 || len(b)%8 != 0 {
		return time.Time{}, nil, fmt.Errorf("dedupe: a seen record of %d bytes", len(b))
	}
	at := time.Unix(0, int64(binary.BigEndian.Uint64(b)))
	ids := make([]uint64, 0, len(b)/8-1)
	for i := 8; i < len(b); i += 8 {
		ids = append(ids, binary.BigEndian.Uint64(b[i:]))
	}
	return at, ids, nil
}

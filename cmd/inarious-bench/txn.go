package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/inarious/inarious/internal/bench/loadgen"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/stream"
	"github.com/inarious/inarious/processors/dedupe"
)

// txnBench times the Kafka transactions the dedupe stage runs, alone: a
// producer writes -rate records/s to a fresh input topic; one member of a
// GroupTransactSession copies each poll (topped up as the stage does) to
// an output topic in one transaction (records and offsets, as the stage's
// flush); a read_committed
// reader of the output times each record from its first produce. It names
// the broker's add.partitions.to.txn.retry.backoff.ms, which paces a
// transaction that begins while the last one's markers are being written.
func txnBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("txn", flag.ContinueOnError)
	brokers := fs.String("brokers", "127.0.0.1:9092", "Kafka brokers (Apache Kafka 4.x: transaction.version 2)")
	rate := fs.Int("rate", 1000, "records per second")
	duration := fs.Duration("duration", 15*time.Second, "length of the run, warm-up included")
	warmup := fs.Duration("warmup", 3*time.Second, "records produced before the first transaction committed and this long after are not timed")
	partitions := fs.Int("partitions", 8, "partitions of both topics")
	topUp := fs.Duration("top-up", dedupe.TopUpWait, "after a poll, wait up to this long for the records that arrived during the last transaction, as the dedupe stage does (0: no)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *rate <= 0 || *partitions <= 0 || *duration <= *warmup {
		return errors.New("-rate and -partitions must be > 0, -duration longer than -warmup")
	}
	seeds := strings.Split(*brokers, ",")
	admin, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
	if err != nil {
		return err
	}
	defer admin.Close()
	tag := fmt.Sprint(time.Now().UnixNano())
	in, out := "txnbench-in-"+tag, "txnbench-out-"+tag
	cfg := kafka.Defaults()
	cfg.Brokers = seeds
	if err := cfg.EnsureTopics(ctx, kafka.TopicSpec{Name: in, Partitions: *partitions}, kafka.TopicSpec{Name: out, Partitions: *partitions}); err != nil {
		return err
	}
	defer deleteTopics(admin, in, out)
	if ms, ok := stream.TxnRetryBackoff(ctx, admin); ok {
		fmt.Printf("broker add.partitions.to.txn.retry.backoff.ms = %d\n", ms)
	}

	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	// Joining the group takes seconds: timing starts once it is warm.
	var timedFrom atomic.Int64
	timedFrom.Store(math.MaxInt64)
	sentAt := func(r *kgo.Record) (time.Time, bool) {
		t := int64(binary.BigEndian.Uint64(r.Value))
		return time.Unix(0, t), t > timedFrom.Load()
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(2)
	go func() { defer wg.Done(); produceAtRate(ctx, seeds, in, *rate) }()
	var visible *loadgen.Histogram
	go func() { defer wg.Done(); visible = readCommitted(ctx, seeds, out, sentAt) }()

	reqs := &requestTimes{by: map[string]*loadgen.Histogram{}}
	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(seeds...), kgo.TransactionalID("txnbench-"+tag),
		kgo.ConsumerGroup("txnbench-"+tag), kgo.ConsumeTopics(in), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ProducerLinger(0), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.WithHooks(reqs))
	if err != nil {
		return err
	}
	defer sess.Close()
	txns, committed := loadgen.NewHistogram(), loadgen.NewHistogram()
	aborted := 0
	for ctx.Err() == nil {
		fetches := sess.PollRecords(ctx, 10_000)
		if fetches.NumRecords() == 0 {
			continue
		}
		if *topUp > 0 {
			tctx, tcancel := context.WithTimeout(ctx, *topUp)
			fetches = append(fetches, sess.PollRecords(tctx, 10_000)...)
			tcancel()
		}
		began := time.Now()
		if err := sess.Begin(); err != nil {
			return err
		}
		fetches.EachRecord(func(r *kgo.Record) {
			sess.Produce(ctx, &kgo.Record{Topic: out, Partition: r.Partition, Value: r.Value}, nil)
		})
		endCtx, endCancel := context.WithTimeout(context.WithoutCancel(ctx), stream.EndTimeout)
		ok, err := sess.End(endCtx, kgo.TryCommit)
		endCancel()
		if err != nil {
			return fmt.Errorf("end transaction: %w", err)
		}
		if !ok {
			aborted++ // a rebalance: the session reads the records again
			continue
		}
		ended := time.Now()
		if timedFrom.Load() == math.MaxInt64 {
			timedFrom.Store(ended.Add(*warmup).UnixNano())
		} else if began.UnixNano() > timedFrom.Load() {
			txns.Record(ended.Sub(began))
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if t, timed := sentAt(r); timed {
				committed.Record(ended.Sub(t))
			}
		})
	}
	cancel()
	wg.Wait()
	fmt.Printf("transactions      %s  (%d aborted)\n", quantiles(txns), aborted)
	fmt.Printf("produce→committed %s  (the transaction's End returned)\n", quantiles(committed))
	fmt.Printf("produce→visible   %s  (read_committed reader)\n", quantiles(visible))
	reqs.print()
	return nil
}

func quantiles(h *loadgen.Histogram) string {
	if h.Count() == 0 {
		return "none"
	}
	s := h.Summary()
	return fmt.Sprintf("n=%d p50 %.1f ms  p90 %.1f ms  p99 %.1f ms", s.Count, s.P50, s.P90, s.P99)
}

func produceAtRate(ctx context.Context, seeds []string, topic string, rate int) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ProducerLinger(0), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return
	}
	defer cl.Close()
	// Open loop: each tick sends what is due, so a slow tick does not lower
	// the rate.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	start, sent := time.Now(), 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for due := int(time.Since(start).Seconds() * float64(rate)); sent < due; sent++ {
			v := binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano()))
			cl.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprint(sent % 97)), Value: v}, nil)
		}
	}
}

func readCommitted(ctx context.Context, seeds []string, topic string, sentAt func(*kgo.Record) (time.Time, bool)) *loadgen.Histogram {
	out := loadgen.NewHistogram()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return out
	}
	defer cl.Close()
	for ctx.Err() == nil {
		fetches := cl.PollFetches(ctx)
		now := time.Now()
		fetches.EachRecord(func(r *kgo.Record) {
			if t, timed := sentAt(r); timed {
				out.Record(now.Sub(t))
			}
		})
	}
	return out
}

// requestTimes collects each Kafka request's round trip by kind.
type requestTimes struct {
	mu sync.Mutex
	by map[string]*loadgen.Histogram
}

func (h *requestTimes) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e2e kgo.BrokerE2E) {
	h.mu.Lock()
	defer h.mu.Unlock()
	name := kmsg.NameForKey(key)
	if h.by[name] == nil {
		h.by[name] = loadgen.NewHistogram()
	}
	h.by[name].Record(e2e.DurationE2E())
}

func (h *requestTimes) print() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, name := range []string{"Produce", "AddPartitionsToTxn", "AddOffsetsToTxn", "TxnOffsetCommit", "Heartbeat", "EndTxn"} {
		if d := h.by[name]; d != nil {
			fmt.Printf("  %-18s %s\n", name, quantiles(d))
		}
	}
}

func deleteTopics(cl *kgo.Client, names ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.TopicNames = names
	for _, name := range names {
		t := kmsg.NewDeleteTopicsRequestTopic()
		t.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, t)
	}
	_, _ = req.RequestWith(ctx, cl)
}

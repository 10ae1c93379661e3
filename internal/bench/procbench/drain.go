package procbench

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
	"golang.org/x/sync/errgroup"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/stream"
	"github.com/inarious/inarious/processors/endpoints"
	"github.com/inarious/inarious/processors/usage"
)

// DrainResult is one timed drain of n events.
type DrainResult struct {
	Events int
	// Startup is from Run to the first event counted (group join, recovery).
	Startup time.Duration
	// Drain is from the first to the last event counted.
	Drain time.Duration
	// CPU is the process's user+system time while draining: on a shared,
	// noisy machine it says more about cost than wall time does. It includes
	// an in-process embedded broker.
	CPU time.Duration
	// Emitted is how many closed windowed buckets the usage group emitted.
	Emitted uint64
}

// CPUPerEvent is the process CPU time spent per event drained.
func (r DrainResult) CPUPerEvent() time.Duration { return r.CPU / time.Duration(max(r.Events, 1)) }

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Rate is events per second while draining.
func (r DrainResult) Rate() float64 { return float64(r.Events) / r.Drain.Seconds() }

// runUntil runs run until counted() reaches n, timing the phases: the
// drain from the first event counted.
func runUntil(ctx context.Context, run func(context.Context) error, n int, counted func() uint64) (DrainResult, error) {
	return runUntilDone(ctx, run, n, counted, nil)
}

// runUntilDone is runUntil that also waits for done(), if not nil, to
// hold once counted() reaches n.
func runUntilDone(ctx context.Context, run func(context.Context) error, n int, counted func() uint64, done func() bool) (DrainResult, error) {
	runCtx, cancel := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	start := time.Now()
	go func() { stopped <- run(runCtx) }()
	defer func() {
		cancel()
		<-stopped
	}()
	var first time.Time
	var cpuAtFirst time.Duration
	err := poll(ctx, func() bool {
		c := counted()
		if c > 0 && first.IsZero() {
			first = time.Now()
			cpuAtFirst = processCPU()
		}
		select {
		case err := <-stopped:
			stopped <- err
			return true
		default:
		}
		return c >= uint64(n) && (done == nil || done())
	})
	end, cpu := time.Now(), processCPU()-cpuAtFirst
	if err != nil {
		return DrainResult{}, err
	}
	if c := counted(); c < uint64(n) {
		runErr := <-stopped
		stopped <- runErr // for the deferred wait
		if runErr == nil {
			return DrainResult{}, fmt.Errorf("processor stopped after %d of %d events", c, n)
		}
		return DrainResult{}, fmt.Errorf("processor stopped after %d of %d events: %w", c, n, runErr)
	}
	return DrainResult{Events: n, Startup: first.Sub(start), Drain: end.Sub(first), CPU: cpu}, nil
}

// DrainInarious times Inarious' usage worker (durable leveldb storage under
// dir) counting the n events of Users; opts add to the group's options.
func DrainInarious(ctx context.Context, cfg kafka.Config, dir string, n int, opts ...usage.Option) (DrainResult, error) {
	log := slog.New(slog.DiscardHandler)
	group := usage.New(append([]usage.Option{usage.WithLogger(log)}, opts...)...)
	if err := cfg.EnsureTopics(ctx, group.Topics()...); err != nil {
		return DrainResult{}, err
	}
	proc, err := stream.NewProcessor(cfg, group, dir, stream.WithLogger(log))
	if err != nil {
		return DrainResult{}, err
	}
	r, err := runUntil(ctx, proc.Run, n, usageCounted(group, n))
	r.Emitted = group.Stats().Emitted
	return r, err
}

// usageCounted is how many events the usage group counted, n-1 at most
// while rows wait to be written and acknowledged.
func usageCounted(group *usage.Processor, n int) func() uint64 {
	return func() uint64 {
		s := group.Stats()
		if group.Unwritten() > 0 {
			return min(s.Processed+s.Replays, uint64(n)-1)
		}
		return s.Processed + s.Replays
	}
}

// DrainWithEndpoints is DrainInarious with the endpoints group (its
// aggregator and its table) running beside the usage group in the same
// process, as a worker runs both: done when the usage group counted every
// event and the endpoints table merged every partial of all of them.
func DrainWithEndpoints(ctx context.Context, cfg kafka.Config, dir string, n int, opts ...usage.Option) (DrainResult, error) {
	log := slog.New(slog.DiscardHandler)
	group := usage.New(append([]usage.Option{usage.WithLogger(log)}, opts...)...)
	ep := endpoints.New(endpoints.WithLogger(log), endpoints.WithTransactionalID("inarious-bench-endpoints"))
	if err := cfg.EnsureTopics(ctx, append(group.Topics(), ep.Topics()...)...); err != nil {
		return DrainResult{}, err
	}
	proc, err := stream.NewProcessor(cfg, group, dir, stream.WithLogger(log))
	if err != nil {
		return DrainResult{}, err
	}
	both := func(ctx context.Context) error {
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { return proc.Run(gctx) })
		g.Go(func() error { return ep.Run(gctx, cfg, dir, nil) })
		return g.Wait()
	}
	r, err := runUntilDone(ctx, both, n, usageCounted(group, n), func() bool {
		a, s := ep.AggregatorStats(), ep.Stats()
		return a.Events >= uint64(n) && s.Merged+s.Replays >= a.Partials
	})
	r.Emitted = group.Stats().Emitted
	return r, err
}

// BaselineGroup is the bare goka counter's group.
const BaselineGroup goka.Group = "baseline"

// DrainBaseline times a bare goka counting processor, goka's defaults and
// leveldb storage under dir, over the same events: the yardstick.
// Only the protocol version (Kafka 4 rejects goka's 2.0) and the start
// offset (goka's default "newest" would skip the pre-filled events) differ.
func DrainBaseline(ctx context.Context, brokers []string, version sarama.KafkaVersion, dir string, n int) (DrainResult, error) {
	sc := goka.DefaultConfig()
	sc.Version = version
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	var counted atomic.Uint64
	g := goka.DefineGroup(BaselineGroup,
		goka.Input(codecs.ActivityTopic, new(codec.Bytes), func(ctx goka.Context, _ any) {
			var n int64
			if v := ctx.Value(); v != nil {
				n = v.(int64)
			}
			ctx.SetValue(n + 1)
			counted.Add(1)
		}),
		goka.Persist(new(codec.Int64)),
	)
	// The table made before the processor starts, with every partition
	// led: a table goka creates right after the bench recreated the
	// topics can fail its first offset request ("not the leader").
	kc := kafka.Defaults()
	kc.Brokers, kc.Version, kc.Replication = brokers, version.String(), 1
	parts, err := kc.TopicPartitions(ctx, string(codecs.ActivityTopic))
	if err != nil {
		return DrainResult{}, err
	}
	kc.Partitions = parts
	if err := kc.EnsureTopics(ctx, kafka.Table(string(goka.GroupTable(BaselineGroup)))); err != nil {
		return DrainResult{}, err
	}
	if err := awaitOffsets(ctx, brokers, sc, string(goka.GroupTable(BaselineGroup)), parts); err != nil {
		return DrainResult{}, err
	}
	tmc := goka.NewTopicManagerConfig()
	tmc.Table.Replication = 1
	tmc.Stream.Replication = 1
	proc, err := goka.NewProcessor(brokers, g,
		goka.WithStorageBuilder(storage.DefaultBuilder(dir)),
		goka.WithConsumerGroupBuilder(goka.ConsumerGroupBuilderWithConfig(sc)),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(sc)),
		goka.WithProducerBuilder(goka.ProducerBuilderWithConfig(sc)),
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(sc, tmc)),
		goka.WithLogger(nopLogger{}),
	)
	if err != nil {
		return DrainResult{}, err
	}
	return runUntil(ctx, proc.Run, n, counted.Load)
}

// awaitOffsets waits until every partition of topic answers an offset
// request: a broker may name itself leader of a new partition a moment
// before it serves it, and goka gives up on the first "not the leader".
func awaitOffsets(ctx context.Context, brokers []string, sc *sarama.Config, topic string, partitions int) error {
	cl, err := sarama.NewClient(brokers, sc)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return poll(ctx, func() bool {
		for p := range partitions {
			if _, err := cl.GetOffset(topic, int32(p), sarama.OffsetOldest); err != nil {
				_ = cl.RefreshMetadata(topic)
				return false
			}
		}
		return true
	})
}

type nopLogger struct{}

func (nopLogger) Print(...any)          {}
func (nopLogger) Println(...any)        {}
func (nopLogger) Printf(string, ...any) {}

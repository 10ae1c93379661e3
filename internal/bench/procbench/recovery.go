package procbench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/stream"
	"github.com/inarious/inarious/processors/usage"
	"github.com/inarious/inarious/views"
)

// readyFn is something that runs until ctx ends and reports when it is ready.
type readyFn struct {
	run   func(context.Context) error
	ready func() bool
}

// timeToReady runs r and measures how long it takes to be ready, then stops it.
func timeToReady(ctx context.Context, r readyFn) (time.Duration, error) {
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- r.run(runCtx) }()
	defer func() {
		cancel()
		<-done
	}()
	var runErr error
	err := poll(ctx, func() bool {
		select {
		case runErr = <-done:
			done <- runErr
			return true
		default:
		}
		return r.ready()
	})
	took := time.Since(start)
	if err != nil {
		return 0, err
	}
	if runErr != nil {
		return 0, fmt.Errorf("stopped before ready: %w", runErr)
	}
	if !r.ready() {
		return 0, errors.New("stopped before ready")
	}
	return took, nil
}

// WorkerReady times a usage worker with local storage under dir from start
// until goka reports it recovered its table and runs.
func WorkerReady(ctx context.Context, cfg kafka.Config, dir string) (time.Duration, error) {
	group := usage.New(usage.WithLogger(slog.New(slog.DiscardHandler)))
	if err := cfg.EnsureTopics(ctx, group.Topics()...); err != nil {
		return 0, err
	}
	proc, err := stream.NewProcessor(cfg, group, dir, stream.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return 0, err
	}
	return timeToReady(ctx, readyFn{run: proc.Run, ready: proc.Recovered})
}

// ViewReady times the API's usage view with local storage under dir from
// start until it has caught up with the table, its top-clients index
// included (loaded from storage on a warm start, built from the changelog
// on a cold one).
func ViewReady(ctx context.Context, cfg kafka.Config, dir string) (time.Duration, error) {
	v, err := views.NewUsage(cfg, dir, views.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return 0, err
	}
	return timeToReady(ctx, readyFn{run: v.Run, ready: v.Recovered})
}

// ViewReadyWithoutIndex is ViewReady for the plain view, to show what the
// index costs.
func ViewReadyWithoutIndex(ctx context.Context, cfg kafka.Config, dir string) (time.Duration, error) {
	v, err := views.NewUsageWithoutIndex(cfg, dir, views.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return 0, err
	}
	return timeToReady(ctx, readyFn{run: v.Run, ready: v.Recovered})
}

// TableSize counts the records of the usage table's changelog: one per
// update, so after compaction about one per client.
func TableSize(cfg kafka.Config) (int64, error) { return TopicRecords(cfg, string(usage.Table)) }

// TopicRecords counts the offsets topic holds (transaction markers take
// one each), 0 for a topic that does not exist.
func TopicRecords(cfg kafka.Config, topic string) (int64, error) {
	tm, err := cfg.TopicManagerBuilder()(cfg.Brokers)
	if err != nil {
		return 0, err
	}
	defer tm.Close()
	parts, err := tm.Partitions(topic)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, p := range parts {
		hi, err := tm.GetOffset(topic, p, -1)
		if err != nil {
			return 0, err
		}
		lo, err := tm.GetOffset(topic, p, -2)
		if err != nil {
			return 0, err
		}
		n += hi - lo
	}
	return n, nil
}

// RecordsWritten counts the offsets (records and transaction markers) of
// every topic but Users and Kafka's own, by topic: what the groups wrote
// to Kafka.
func RecordsWritten(cfg kafka.Config) (map[string]int64, error) {
	cl, err := sarama.NewClient(cfg.Brokers, cfg.Sarama())
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	topics, err := cl.Topics()
	if err != nil {
		return nil, err
	}
	n := map[string]int64{}
	for _, t := range topics {
		if t == string(codecs.ActivityTopic) || strings.HasPrefix(t, "__") {
			continue
		}
		parts, err := cl.Partitions(t)
		if err != nil {
			return nil, err
		}
		for _, p := range parts {
			hi, err := cl.GetOffset(t, p, sarama.OffsetNewest)
			if err != nil {
				return nil, err
			}
			lo, err := cl.GetOffset(t, p, sarama.OffsetOldest)
			if err != nil {
				return nil, err
			}
			n[t] += hi - lo
		}
	}
	return n, nil
}

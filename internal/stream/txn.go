package stream

// Helpers of the members that consume and produce in Kafka transactions
// (franz-go's GroupTransactSession): the endpoints aggregator and the
// dedupe stage.

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TransactionTimeout bounds how long a member that died inside a
// transaction holds back read_committed readers of what it writes. A
// transaction is open only while a flush produces, milliseconds; a member
// restarted under the same transactional ID ends it at once.
const TransactionTimeout = 10 * time.Second

// EndTimeout bounds ending one transaction.
const EndTimeout = 15 * time.Second

// RetrySessions runs session until ctx ends, starting a new one after a
// pause (doubling up to 30 s) whenever one fails.
func RetrySessions(ctx context.Context, log *slog.Logger, session func(context.Context) error) error {
	backoff := time.Second
	for {
		err := session(ctx)
		if ctx.Err() != nil {
			return err
		}
		log.Warn("session failed; starting a new one", "err", err, "retry_in", backoff)
		if Sleep(ctx, backoff) != nil {
			return nil
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

// Sleep waits d, or until ctx ends (its error then).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// FetchFailure logs the errors of a poll and returns the one that ends the
// session (the client closed); the others franz-go retries itself.
func FetchFailure(fetches kgo.Fetches, log *slog.Logger) error {
	var fatal error
	fetches.EachError(func(topic string, p int32, err error) {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return
		}
		log.Warn("fetch failed", "topic", topic, "partition", p, "err", err)
		if errors.Is(err, kgo.ErrClientClosed) {
			fatal = err
		}
	})
	return fatal
}

// AbortTransaction ends the session's open work without committing it: the
// session rewinds to the last committed offsets.
func AbortTransaction(ctx context.Context, sess *kgo.GroupTransactSession) error {
	// Ended even when the member is stopping: canceling End would leave
	// the client in an unknown state (kgo's docs).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), EndTimeout)
	defer cancel()
	if err := sess.Begin(); err != nil {
		return err
	}
	_, err := sess.End(ctx, kgo.TryAbort)
	return err
}

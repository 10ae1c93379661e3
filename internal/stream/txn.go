package stream

// Helpers of the members that consume and produce in Kafka transactions
// (franz-go's GroupTransactSession): the endpoints aggregator and the
// dedupe stage.

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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

// txnRetryBackoffConfig is the broker setting that paces a transaction's
// first produce while the previous one's markers are being written
// (transaction.version 2); Kafka's default, 20 ms, adds up to that much
// to every transaction of a member that commits back to back.
const txnRetryBackoffConfig = "add.partitions.to.txn.retry.backoff.ms"

// slowTxnRetryBackoff is the value from which LogTxnRetryBackoff advises.
const slowTxnRetryBackoff = 5

// LogTxnRetryBackoff reads the broker's txnRetryBackoffConfig and, when it
// is slow, logs once how to make every transaction faster. It is advice
// only: a broker that does not answer (ACLs, an old version) is skipped.
func LogTxnRetryBackoff(ctx context.Context, cl *kgo.Client, log *slog.Logger) {
	if ms, ok := TxnRetryBackoff(ctx, cl); ok && ms > slowTxnRetryBackoff {
		log.Info("broker paces transactions slowly; set "+txnRetryBackoffConfig+" to 1-5 on the brokers for faster flushes (README, \"Retries are counted once\")",
			"value_ms", ms)
	}
}

// TxnRetryBackoff is a broker's txnRetryBackoffConfig in milliseconds; ok
// is false when the broker does not tell.
func TxnRetryBackoff(ctx context.Context, cl *kgo.Client) (ms int, ok bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	meta, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil || len(meta.Brokers) == 0 {
		return 0, false
	}
	req := kmsg.NewPtrDescribeConfigsRequest()
	res := kmsg.NewDescribeConfigsRequestResource()
	res.ResourceType = kmsg.ConfigResourceTypeBroker
	res.ResourceName = strconv.Itoa(int(meta.Brokers[0].NodeID))
	res.ConfigNames = []string{txnRetryBackoffConfig}
	req.Resources = append(req.Resources, res)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, false
	}
	for _, r := range resp.Resources {
		for _, c := range r.Configs {
			if c.Name == txnRetryBackoffConfig && c.Value != nil {
				if ms, err := strconv.Atoi(*c.Value); err == nil {
					return ms, true
				}
			}
		}
	}
	return 0, false
}

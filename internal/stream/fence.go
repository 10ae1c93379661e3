package stream

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka"
)

// Fence guards a group's writes computed from its partitions' state by a
// check that fails while this member's membership is unconfirmed
// (ownership.Lease): a member stalled past its session timeout (SIGSTOP, a
// paused VM) still runs its old generation for a moment when it resumes,
// and what it writes then, from its stale state, would land after the new
// owner's records of the same keys. A nil Fence always passes.
type Fence struct {
	check func() error
	what  string
	log   *slog.Logger
	held  atomic.Bool // logged as holding writes
}

// NewFence fences writes of what (a table or topic, for the log) by check.
func NewFence(check func() error, what string, log *slog.Logger) *Fence {
	if log == nil {
		log = slog.Default()
	}
	return &Fence{check: check, what: what, log: log}
}

// fenceRetry is how often a held write asks the fence again.
const fenceRetry = 50 * time.Millisecond

// Err is the check's verdict; it logs once when writes start being held and
// once when they go on, not once per write.
func (f *Fence) Err() error {
	if f == nil || f.check == nil {
		return nil
	}
	err := f.check()
	if err != nil && f.held.CompareAndSwap(false, true) {
		f.log.Warn("writes held: membership not confirmed", "writes", f.what, "err", err)
	} else if err == nil && f.held.CompareAndSwap(true, false) {
		f.log.Info("membership confirmed, writing again", "writes", f.what)
	}
	return err
}

// Await holds ctx's callback until the fence passes, and reports true; or
// until its partition closes (the member lost it), and reports false: then
// ctx's message is not committed, so its next owner reads it again, and the
// caller must write nothing.
func (f *Fence) Await(ctx goka.Context) bool {
	err := f.Err()
	if err == nil {
		return true
	}
	t := time.NewTicker(fenceRetry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Context().Done():
			ctx.DeferCommit()(fmt.Errorf("stream: %s write fenced, partition %d closed: %w", f.what, ctx.Partition(), err))
			return false
		case <-t.C:
			if err = f.Err(); err == nil {
				return true
			}
		}
	}
}

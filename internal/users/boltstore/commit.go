package boltstore

import (
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("boltstore: closed")

// maxGroup bounds the writes committed in one transaction.
const maxGroup = 1024

// writeOp is one write waiting for its group's commit.
type writeOp struct {
	fn   func(*bolt.Tx) error
	done chan error
}

// committer is a group commit without a fixed gathering delay: one
// goroutine commits the writes that are waiting when it is free, in one
// transaction and its two fsyncs. A lone write is committed at once; under
// load a group waits only for writers expected back (see gather). (bbolt's
// DB.Batch instead waits MaxBatchDelay before each group, which put that
// delay into every write's latency and so capped throughput at
// connections / delay.)
type committer struct {
	db     *bolt.DB
	mu     sync.RWMutex // orders write against close
	closed bool
	ops    chan *writeOp
	done   chan struct{}

	commits, writes atomic.Uint64 // for Stats

	// Owned by run's goroutine.
	expect int         // writes in the previous commit and queued during it
	gap    *time.Timer // await's timer, stopped between uses
}

func newCommitter(db *bolt.DB) *committer {
	c := &committer{db: db, ops: make(chan *writeOp, maxGroup), done: make(chan struct{}), gap: time.NewTimer(time.Hour)}
	c.gap.Stop()
	go c.run()
	return c
}

// write runs fn in a read-write transaction shared with concurrent writes,
// and returns once that transaction is durable or fn failed. Like
// DB.Batch's, fn may run more than once and must only change tx.
func (c *committer) write(fn func(*bolt.Tx) error) error {
	op := &writeOp{fn: fn, done: make(chan error, 1)}
	c.mu.RLock()
	if c.closed {
		c.mu.RUnlock()
		return ErrClosed
	}
	c.ops <- op
	c.mu.RUnlock()
	return <-op.done
}

func (c *committer) run() {
	defer close(c.done)
	group := make([]*writeOp, 0, maxGroup)
	for op := range c.ops {
		group = c.gather(append(group[:0], op))
		// Counted first: a writer may look at Stats once acknowledged.
		c.commits.Add(1)
		c.writes.Add(uint64(len(group)))
		c.commit(group)
		c.expect = min(len(group)+len(c.ops), maxGroup)
	}
}

// gather adds the writes waiting now, and those that goroutines already
// runnable are about to send: it yields while yielding brings more. A
// commit's fsync may hold the only P for a while (sysmon hands it off
// late), so without yielding a group would often be just one write.
//
// Yielding does not reach writers whose requests are still unread on their
// sockets: the scheduler polls the network only when nothing is runnable.
// So while the group is smaller than the writers the previous commit
// acknowledged (likely coming back, as wrk's connections do) plus those
// that queued during it, gather parks, which lets the poller run, until
// they are here or none has come for gatherGap. With 32 connections on one
// core (BenchmarkPostUsersLoopback in api) groups grew from about 14 writes
// to 25-30. A lone writer after a lone writer never waits; the price is
// paid when load stops: the first lone write after a group of writers
// waits once for them, about 1.3 ms (gatherGap, rounded up to the poller's
// 1 ms tick when the P is idle).
func (c *committer) gather(group []*writeOp) []*writeOp {
	group = c.drain(group)
	for len(group) < maxGroup {
		before := len(group)
		runtime.Gosched()
		if group = c.drain(group); len(group) == before {
			break
		}
	}
	if len(group) < c.expect {
		group = c.await(group, c.expect)
	}
	return group
}

// gatherGap bounds how long gather waits for the next write of a group.
// On an idle P a shorter timer still waits for the poller's 1 ms tick.
const gatherGap = 100 * time.Microsecond

// await adds writes as they come until the group has want of them or none
// came for gatherGap.
func (c *committer) await(group []*writeOp, want int) []*writeOp {
	c.gap.Reset(gatherGap)
	defer c.gap.Stop()
	for len(group) < want {
		select {
		case op, ok := <-c.ops:
			if !ok {
				return group
			}
			group = c.drain(append(group, op))
			c.gap.Reset(gatherGap)
		case <-c.gap.C:
			return group
		}
	}
	return group
}

// drain adds the writes queued now, without waiting.
func (c *committer) drain(group []*writeOp) []*writeOp {
	for len(group) < maxGroup {
		select {
		case op, ok := <-c.ops:
			if !ok {
				return group
			}
			group = append(group, op)
		default:
			return group
		}
	}
	return group
}

// commit commits group in one transaction. A write that fails rolls the
// transaction back; it then runs alone, so its error is its own, and the
// rest are committed together again.
func (c *committer) commit(group []*writeOp) {
	for len(group) > 0 {
		failed := -1
		err := c.db.Update(func(tx *bolt.Tx) error {
			for i, op := range group {
				if err := op.fn(tx); err != nil {
					failed = i
					return err
				}
			}
			return nil
		})
		if failed < 0 {
			for _, op := range group {
				op.done <- err // nil, or the commit's own error for all
			}
			return
		}
		op := group[failed]
		op.done <- c.db.Update(op.fn)
		group = append(group[:failed], group[failed+1:]...)
	}
}

// stats reports the groups committed or being committed and their writes.
func (c *committer) stats() (commits, writes uint64) {
	return c.commits.Load(), c.writes.Load()
}

// close commits what is queued and stops accepting writes.
func (c *committer) close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.ops)
	}
	c.mu.Unlock()
	<-c.done
}

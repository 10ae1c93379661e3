package boltstore

import (
	"errors"
	"runtime"
	"sync"

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

// committer is a group commit without a gathering delay: one goroutine
// commits every write that is waiting when it is free, in one transaction
// and its two fsyncs. Under load a group is whatever arrived during the
// previous commit; a lone write is committed at once. (bbolt's DB.Batch
// instead waits MaxBatchDelay before each group, which put that delay into
// every write's latency and so capped throughput at connections / delay.)
type committer struct {
	db     *bolt.DB
	mu     sync.RWMutex // orders write against close
	closed bool
	ops    chan *writeOp
	done   chan struct{}
}

func newCommitter(db *bolt.DB) *committer {
	c := &committer{db: db, ops: make(chan *writeOp, maxGroup), done: make(chan struct{})}
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
		c.commit(group)
	}
}

// gather adds the writes waiting now, and those that goroutines already
// runnable are about to send: it yields while yielding brings more. A
// commit's fsync may hold the only P for a while (sysmon hands it off
// late), so without yielding a group would often be just one write.
func (c *committer) gather(group []*writeOp) []*writeOp {
	group = c.drain(group)
	for len(group) < maxGroup {
		before := len(group)
		runtime.Gosched()
		if group = c.drain(group); len(group) == before {
			break
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

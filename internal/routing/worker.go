// Package routing answers reads of the usage and endpoints tables from the
// worker that owns the key's partition instead of from a full copy of the
// table in every API replica. Workers serve their own partitions (Worker,
// EndpointWorker); the API forwards each read to the owner that Kafka's
// group description names (Reader, EndpointReader). The owner lookup, the
// forwarding with retries and the refusals are shared (member, forwarder).
// See the README ("Routed reads").
package routing

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/top"
)

// Path is the worker's read endpoint: GET Path?client=<client>.
const Path = "/query/usage"

// HeaderPartition names the partition an answer (or refusal) is about, so
// the API can check the worker hashed the client as it did.
const HeaderPartition = "Inarious-Partition"

// ContentType of an answer: the table value as the table stores it.
const ContentType = "application/x-protobuf"

// Worker serves reads of the usage table from the partitions the local
// processor owns and has recovered. It refuses every other read: 421 when
// the partition is not this member's, 503 while the processor is not
// running (starting, rebalancing, recovering, stopped).
type Worker struct {
	member
	windows atomic.Pointer[windowStores]
	top     *top.Index // the processor's own partitions, nil without
}

// member is what every table's worker side shares: the group member's
// processor, the read-time checks around it and the refusals.
type member struct {
	partitions int
	proc       atomic.Pointer[goka.Processor]
	log        *slog.Logger
	lease      Lease // nil: none
	now        func() time.Time

	answered, refused atomic.Uint64
}

// NewWorker serves the table of a group whose input has n partitions, and
// its clients by total calls from idx, which the processor keeps for its own
// partitions (usage.WithTopIndex); nil serves no top clients.
func NewWorker(n int, idx *top.Index, opts ...Option) *Worker {
	return &Worker{member: newMember(n, opts), top: idx}
}

func newMember(n int, opts []Option) member {
	o := newOptions(opts)
	return member{partitions: n, log: o.log, lease: o.lease, now: o.now}
}

// Lease is how recently the group coordinator confirmed this process'
// membership (ownership.Lease).
type Lease interface {
	// Confirmed is the send time of the last heartbeat the coordinator
	// accepted for the current session; zero if none.
	Confirmed() time.Time
}

// LeaseTTL is how long after a confirmed heartbeat was sent a member still
// answers. The coordinator cannot evict it before the session timeout (6 s)
// has passed since then; the other half is margin for the drift between
// the broker's clock and ours and for the read itself. sarama heartbeats
// every second, so up to two lost heartbeats in a row refuse nothing.
const LeaseTTL = kafka.SessionTimeout / 2

// checkLease fails when membership was last confirmed longer than LeaseTTL
// ago: a process stalled past its session timeout (SIGSTOP, a paused VM)
// still sees goka Running when it resumes, until its next heartbeat fails.
func (w *member) checkLease() error {
	if w.lease == nil {
		return nil
	}
	c := w.lease.Confirmed()
	if c.IsZero() {
		return errors.New("group membership not confirmed yet")
	}
	if age := w.now().Sub(c); age > LeaseTTL {
		return fmt.Errorf("group membership last confirmed %v ago", age.Round(time.Millisecond))
	}
	return nil
}

// SetProcessor serves from proc from now on (stream.Run rebuilds the
// processor when Kafka goes away; the newest one is the one that counts).
func (w *member) SetProcessor(proc *goka.Processor) { w.proc.Store(proc) }

// Register adds Path, SeriesPath and TopPath to mux, which a worker's query
// server shares among its groups.
func (w *Worker) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+Path, w.serveUsage)
	mux.HandleFunc("GET "+SeriesPath, w.serveSeries)
	mux.HandleFunc("GET "+TopPath, w.serveTop)
}

// Handler serves what Register adds, and /healthz.
func (w *Worker) Handler() http.Handler {
	mux := http.NewServeMux()
	w.Register(mux)
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) { _, _ = rw.Write([]byte("ok\n")) })
	return mux
}

// Answered and Refused count reads since start, for metrics.
func (w *member) Answered() uint64 { return w.answered.Load() }
func (w *member) Refused() uint64  { return w.refused.Load() }

// errNotOwned is goka's "this processor does not contain partition" (it
// has no typed error for it).
var errNotOwned = errors.New("not owned by this worker")

func (w *Worker) serveUsage(rw http.ResponseWriter, r *http.Request) {
	client, ok := clientParam(rw, r)
	if !ok {
		return
	}
	p := kafka.PartitionOf(client, w.partitions)
	rw.Header().Set(HeaderPartition, strconv.Itoa(int(p)))
	val, err := w.read(client)
	if w.refuse(rw, err) {
		return
	}
	if val == nil {
		rw.WriteHeader(http.StatusNotFound)
		return
	}
	b, err := new(codecs.ClientUsage).Encode(val)
	if err != nil {
		w.log.Error("encoding a table value", "client", client, "err", err)
		http.Error(rw, "cannot encode the value", http.StatusInternalServerError)
		return
	}
	rw.Header().Set("Content-Type", ContentType)
	_, _ = rw.Write(b)
}

// clientParam is the client asked about, or false once it answered 400.
func clientParam(rw http.ResponseWriter, r *http.Request) (string, bool) {
	return keyParam(rw, r, "client", 256)
}

// keyParam is the key named name asked about, valid UTF-8 of at most maxLen
// bytes, or false once it answered 400.
func keyParam(rw http.ResponseWriter, r *http.Request, name string, maxLen int) (string, bool) {
	key := r.URL.Query().Get(name)
	if !r.URL.Query().Has(name) || len(key) > maxLen || !utf8.ValidString(key) {
		http.Error(rw, fmt.Sprintf("%s must be valid UTF-8 of at most %d bytes", name, maxLen), http.StatusBadRequest)
		return "", false
	}
	return key, true
}

// refuse answers a read that failed (421 when the partition is not this
// member's, 503 otherwise) and counts it; it reports whether it did.
func (w *member) refuse(rw http.ResponseWriter, err error) bool {
	switch {
	case errors.Is(err, errNotOwned):
		http.Error(rw, err.Error(), http.StatusMisdirectedRequest)
	case err != nil:
		http.Error(rw, err.Error(), http.StatusServiceUnavailable)
	default:
		w.answered.Add(1)
		return false
	}
	w.refused.Add(1)
	return true
}

// read reads client's row (nil if it has none) under guardedRow.
func (w *member) read(client string) (any, error) {
	var val any
	err := w.guardedRow(client, func(row any) error { val = row; return nil })
	return val, err
}

// guardedRow calls fn with client's row (nil if none) under guarded; the
// row's partition must be this member's.
func (w *member) guardedRow(client string, fn func(row any) error) error {
	return w.guarded(func(proc *goka.Processor) error {
		val, err := proc.Get(client)
		if err != nil {
			if strings.Contains(err.Error(), "does not contain partition") {
				return fmt.Errorf("partition %d: %w", kafka.PartitionOf(client, w.partitions), errNotOwned)
			}
			return err
		}
		return fn(val)
	})
}

// guarded runs read only while the processor is running, and fails if a
// rebalance began before read ended, whatever read found: goka's
// Processor.Get answers from any partition the processor holds, also one
// still recovering in a new generation's setup, so the processor's state
// is checked around it.
func (w *member) guarded(read func(*goka.Processor) error) error {
	proc := w.proc.Load()
	if proc == nil {
		return errors.New("processor not started")
	}
	select {
	case <-proc.Done():
		return errors.New("processor stopped")
	default:
	}
	sig, ok := proc.StateReader().(*goka.Signal)
	if !ok {
		return errors.New("processor state unreadable")
	}
	// Armed before the state check: from Running a processor only goes to
	// Stopping (the session's Cleanup, before any new Setup), which closes
	// left synchronously, so a read that overlaps a rebalance is caught.
	left, cleanup := sig.WaitForStateMinWithCleanup(goka.ProcStateStopping)
	defer cleanup()
	if !sig.IsState(goka.ProcStateRunning) {
		return errors.New("processor is not running (rebalancing or recovering)")
	}
	if err := w.checkLease(); err != nil {
		return err
	}
	err := read(proc)
	select {
	case <-left:
		return errors.New("rebalance began during the read")
	default:
	}
	// Again after: the process may have stalled during the read. A lease
	// valid now was valid all through it.
	if err := w.checkLease(); err != nil {
		return err
	}
	return err
}

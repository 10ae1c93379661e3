// Package routing answers usage reads from the worker that owns the client's
// partition instead of from a full copy of the table in every API replica.
// Workers serve their own partitions (Worker); the API forwards each read to
// the owner that Kafka's group description names (Reader).
package routing

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/kafka"
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
	partitions int
	proc       atomic.Pointer[goka.Processor]
	windows    atomic.Pointer[windowStores]
	log        *slog.Logger

	answered, refused atomic.Uint64
}

// NewWorker serves the table of a group whose input has n partitions.
func NewWorker(n int, log *slog.Logger) *Worker {
	if log == nil {
		log = slog.Default()
	}
	return &Worker{partitions: n, log: log}
}

// SetProcessor serves from proc from now on (stream.Run rebuilds the
// processor when Kafka goes away; the newest one is the one that counts).
func (w *Worker) SetProcessor(proc *goka.Processor) { w.proc.Store(proc) }

// Handler serves Path.
func (w *Worker) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Path, w.serveUsage)
	mux.HandleFunc("GET "+SeriesPath, w.serveSeries)
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) { _, _ = rw.Write([]byte("ok\n")) })
	return mux
}

// Answered and Refused count reads since start, for metrics.
func (w *Worker) Answered() uint64 { return w.answered.Load() }
func (w *Worker) Refused() uint64  { return w.refused.Load() }

// errNotOwned is goka's "this processor does not contain partition" (it
// has no typed error for it).
var errNotOwned = errors.New("partition not owned by this member")

func (w *Worker) serveUsage(rw http.ResponseWriter, r *http.Request) {
	client, ok := clientParam(rw, r)
	if !ok {
		return
	}
	p := kafka.PartitionOf(client, w.partitions)
	rw.Header().Set(HeaderPartition, strconv.Itoa(int(p)))
	val, err := w.read(client)
	switch {
	case errors.Is(err, errNotOwned):
		w.refused.Add(1)
		http.Error(rw, "partition "+strconv.Itoa(int(p))+" is not owned by this worker", http.StatusMisdirectedRequest)
		return
	case err != nil:
		w.refused.Add(1)
		http.Error(rw, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.answered.Add(1)
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
	client := r.URL.Query().Get("client")
	if !r.URL.Query().Has("client") || len(client) > 256 || !utf8.ValidString(client) {
		http.Error(rw, "client must be valid UTF-8 of at most 256 bytes", http.StatusBadRequest)
		return "", false
	}
	return client, true
}

// read reads client's row (nil if it has none) under guarded.
func (w *Worker) read(client string) (any, error) {
	var val any
	err := w.guarded(client, func(row any) error { val = row; return nil })
	return val, err
}

// guarded calls fn with client's row (nil if none) only if, for the whole
// of fn, this member owns its partition and has recovered it, and fails
// otherwise, whatever fn read: goka's Processor.Get answers from any
// partition the processor holds, also one still recovering in a new
// generation's setup, so the processor's state is checked around it.
func (w *Worker) guarded(client string, fn func(row any) error) error {
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
	val, err := proc.Get(client)
	if err == nil {
		err = fn(val)
	}
	select {
	case <-left:
		return errors.New("rebalance began during the read")
	default:
	}
	if err != nil {
		if strings.Contains(err.Error(), "does not contain partition") {
			return errNotOwned
		}
		return err
	}
	return nil
}

package routing

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/views"
)

// SeriesPath is the worker's windowed read, views.Merger.Series of its own
// clients: GET SeriesPath?client=&step=<seconds>&from=&to=<RFC 3339, ns>,
// answered with the buckets as JSON, 400 with the reason for a query the
// worker's windows cannot answer.
const SeriesPath = "/query/series"

// WindowStores holds the closed buckets of the partitions a worker owns
// (usage.Processor with usage.WithWindowJoins).
type WindowStores interface {
	// ScanWindow calls fn with each record of topic's partition, in key
	// order, whose key lies in [start, limit).
	ScanWindow(topic string, partition int32, start, limit string, fn func(key string, value []byte) error) error
}

type windowStores struct {
	cfg    windows.Config
	stores WindowStores
}

// SetWindows serves windowed reads of cfg: closed buckets from stores, the
// others from the client's row.
func (w *Worker) SetWindows(cfg windows.Config, stores WindowStores) {
	w.windows.Store(&windowStores{cfg: cfg, stores: stores})
}

// partitionSource is one partition's joined windowed topics as a
// views.ClosedSource: the partition of the client asked about.
type partitionSource struct {
	stores    WindowStores
	partition int32
}

func (s partitionSource) Closed(_ string, step time.Duration, start, limit string, fn func(string, *activitypb.WindowCounts)) error {
	return s.stores.ScanWindow(windows.Topic(step), s.partition, start, limit, func(key string, v []byte) error {
		wc, err := new(codecs.WindowCounts).Decode(v)
		if err != nil {
			return err
		}
		fn(key, wc.(*activitypb.WindowCounts))
		return nil
	})
}

// readRow is a row already read (nil: none) as a views.RowReader.
type readRow struct{ row *activitypb.ClientUsage }

func (r readRow) Get(string) (*activitypb.ClientUsage, error) { return r.row, nil }

func (w *Worker) serveSeries(rw http.ResponseWriter, r *http.Request) {
	client, ok := clientParam(rw, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	sec, err1 := strconv.ParseInt(q.Get("step"), 10, 64)
	from, err2 := time.Parse(time.RFC3339Nano, q.Get("from"))
	to, err3 := time.Parse(time.RFC3339Nano, q.Get("to"))
	if err := errors.Join(err1, err2, err3); err != nil || sec <= 0 {
		http.Error(rw, "step (seconds), from and to (RFC 3339) are required", http.StatusBadRequest)
		return
	}
	p := kafka.PartitionOf(client, w.partitions)
	rw.Header().Set(HeaderPartition, strconv.Itoa(int(p)))
	src := w.windows.Load()
	if src == nil {
		w.refused.Add(1)
		http.Error(rw, "this worker serves no windowed reads", http.StatusServiceUnavailable)
		return
	}
	var buckets []windows.Bucket
	// The row first: it fixes ownership, and a bucket closed since is then
	// either still open in it or already final in the join (final wins).
	err := w.guardedRow(client, func(row any) error {
		u, _ := row.(*activitypb.ClientUsage)
		m := views.NewMerger(src.cfg, partitionSource{src.stores, p}, readRow{u}, time.Now)
		var err error
		buckets, err = m.Series(client, time.Duration(sec)*time.Second, from, to)
		return err
	})
	if qe := (*windows.QueryError)(nil); errors.As(err, &qe) {
		w.answered.Add(1)
		http.Error(rw, qe.Msg, http.StatusBadRequest)
		return
	}
	if w.refuse(rw, err) {
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(rw).Encode(buckets); err != nil {
		w.log.Debug("writing a series", "client", client, "err", err)
	}
}

// Windows is the windowing served: the workers', which the API checks
// queries against.
func (r *Reader) Windows() windows.Config { return r.windows }

// Series is client's buckets of step whose start lies in [from, to], as its
// partition's owner answers them; a query the owner cannot answer is a
// *windows.QueryError.
func (r *Reader) Series(client string, step time.Duration, from, to time.Time) ([]windows.Bucket, error) {
	q := url.Values{
		"client": {client},
		"step":   {strconv.FormatInt(int64(step/time.Second), 10)},
		"from":   {from.UTC().Format(time.RFC3339Nano)},
		"to":     {to.UTC().Format(time.RFC3339Nano)},
	}
	var out []windows.Bucket
	err := r.forward(client, SeriesPath, q, func(status int, body []byte) (bool, error) {
		switch status {
		case http.StatusOK:
			out = nil
			if err := json.Unmarshal(body, &out); err != nil {
				return false, err
			}
			r.ok.Add(1)
			return true, nil
		case http.StatusBadRequest:
			return true, &windows.QueryError{Msg: clip(trimNewline(body))}
		}
		return false, nil
	})
	return out, err
}

// Range sums client's usage over the last window, relative to now.
func (r *Reader) Range(client string, window time.Duration) (windows.Sum, error) {
	return r.windows.SumLast(r.Series, client, window, r.now())
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

package views

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/lovoo/goka"
	"golang.org/x/sync/errgroup"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/tablestore"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/processors/usage"
)

// RowReader reads a client's usage row (Usage in production), where the
// buckets not yet closed live.
type RowReader interface {
	Get(client string) (*activitypb.ClientUsage, error)
}

// ClosedSource holds closed buckets: the records of each granularity's
// windowed topic (in the API a view of every partition, in a worker the
// partitions it joins).
type ClosedSource interface {
	// Closed calls fn, in key order, with each record of step's windowed
	// topic whose key lies in [start, limit), a range of client's keys.
	Closed(client string, step time.Duration, start, limit string, fn func(key string, wc *activitypb.WindowCounts)) error
}

// Merger answers windowed reads: closed buckets from a ClosedSource, the
// buckets not closed yet (and the latest close) from the client's row.
type Merger struct {
	cfg    windows.Config
	closed ClosedSource
	rows   RowReader
	now    func() time.Time
}

// NewMerger reads the windows of cfg from closed and rows, relative to now.
func NewMerger(cfg windows.Config, closed ClosedSource, rows RowReader, now func() time.Time) *Merger {
	return &Merger{cfg: cfg, closed: closed, rows: rows, now: now}
}

// Windows reads windowed usage: closed buckets from a goka view of each
// granularity's windowed topic, open ones from the client's usage row.
type Windows struct {
	*Merger
	views map[time.Duration]*goka.View
	log   *slog.Logger
}

// viewSource is the windowed views as a ClosedSource.
type viewSource map[time.Duration]*goka.View

func (vs viewSource) Closed(_ string, step time.Duration, start, limit string, fn func(string, *activitypb.WindowCounts)) error {
	v, ok := vs[step]
	if !ok {
		return fmt.Errorf("no view of %s", windows.Topic(step))
	}
	it, err := v.IteratorWithRange(start, limit)
	if err != nil {
		return err
	}
	defer it.Release()
	for it.Next() {
		val, err := it.Value()
		if err != nil {
			return fmt.Errorf("decode %q: %w", it.Key(), err)
		}
		wc, _ := val.(*activitypb.WindowCounts)
		fn(it.Key(), wc)
	}
	return it.Err()
}

// NewWindows builds a view of each windowed topic of cfg with local storage
// under dataDir, reading open buckets through rows.
func NewWindows(kc kafka.Config, cfg windows.Config, dataDir string, rows RowReader, opts ...Option) (*Windows, error) {
	if err := kc.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	set := settingsOf(opts)
	w := &Windows{views: make(map[time.Duration]*goka.View, len(cfg.Specs)), log: set.log}
	w.Merger = NewMerger(cfg, viewSource(w.views), rows, set.now)
	all := append(kc.ViewOptions(set.log),
		// Get and Evict find a key where its producer put it: by its client.
		goka.WithViewHasher(windows.Hasher),
		goka.WithViewStorageBuilder(tablestore.Builder(filepath.Join(dataDir, "windows"), tablestore.DefaultOptions())),
	)
	all = append(all, set.goka...)
	for _, s := range cfg.Specs {
		v, err := goka.NewView(kc.Brokers, goka.Table(windows.Topic(s.Step)), new(codecs.WindowCounts), all...)
		if err != nil {
			return nil, fmt.Errorf("windows view %s: %w", windows.Topic(s.Step), err)
		}
		w.views[s.Step] = v
	}
	return w, nil
}

// Config is the windowing served.
func (m *Merger) Config() windows.Config { return m.cfg }

// Run keeps the views up to date and prunes their local storage until ctx
// ends. The pruners stop before the views close: goka's View drops its
// partitions on close without a lock, under a running iterator.
func (w *Windows) Run(ctx context.Context) error {
	vctx, stopViews := context.WithCancel(context.WithoutCancel(ctx))
	defer stopViews()
	views, vctx := errgroup.WithContext(vctx)
	for _, s := range w.cfg.Specs {
		v := w.views[s.Step]
		views.Go(func() error { return v.Run(vctx) })
	}
	pctx, stopPruners := context.WithCancel(ctx)
	var pruners sync.WaitGroup
	for _, s := range w.cfg.Specs {
		pruners.Go(func() { w.pruneLoop(pctx, vctx, s) })
	}
	select {
	case <-ctx.Done():
	case <-vctx.Done():
	}
	stopPruners()
	pruners.Wait()
	stopViews()
	return views.Wait()
}

// Recovered reports whether every windowed view follows its topic.
func (w *Windows) Recovered() bool {
	for _, v := range w.views {
		if v.CurrentState() != goka.ViewStateRunning {
			return false
		}
	}
	return true
}

// Series returns client's buckets of step whose start lies in [from, to],
// oldest first; buckets without calls are left out. Closed buckets come from
// the closed source, the others from the client's row (Final false). Both
// are read as they are now: for the moment between a close reaching the row
// and its record reaching the closed source, the row's last close fills in.
func (m *Merger) Series(client string, step time.Duration, from, to time.Time) ([]windows.Bucket, error) {
	if _, ok := m.cfg.Spec(step); !ok {
		return nil, &windows.QueryError{Msg: fmt.Sprintf("step %s is not kept", windows.FormatDuration(step))}
	}
	lo, hi := windows.StartBounds(step, from, to)
	if lo > hi {
		return nil, nil
	}
	found := map[int64]windows.Bucket{}
	start, limit := windows.KeyRange(client, lo, hi)
	err := m.closed.Closed(client, step, start, limit, func(key string, wc *activitypb.WindowCounts) {
		c, s, ok := windows.ParseKey(key)
		if !ok || c != client || s < lo || s > hi {
			return
		}
		found[s] = closedBucket(s, step, wc)
	})
	if err != nil {
		return nil, fmt.Errorf("closed buckets of %s: %w", windows.Topic(step), err)
	}
	if err := m.addRow(client, step, lo, hi, found); err != nil {
		return nil, err
	}
	return sorted(found), nil
}

// seriesByGet is Series with one Get per bucket instead of a range scan;
// BenchmarkSeries compares the two.
func (w *Windows) seriesByGet(client string, step time.Duration, from, to time.Time) ([]windows.Bucket, error) {
	v, ok := w.views[step]
	if !ok {
		return nil, &windows.QueryError{Msg: fmt.Sprintf("step %s is not kept", windows.FormatDuration(step))}
	}
	lo, hi := windows.StartBounds(step, from, to)
	found := map[int64]windows.Bucket{}
	for s := lo; s <= hi; s += int64(step / time.Second) {
		val, err := v.Get(windows.Key(client, s))
		if err != nil {
			return nil, err
		}
		if wc, ok := val.(*activitypb.WindowCounts); ok {
			found[s] = closedBucket(s, step, wc)
		}
	}
	if err := w.addRow(client, step, lo, hi, found); err != nil {
		return nil, err
	}
	return sorted(found), nil
}

// closedBucket is a closed bucket's record as a bucket of step starting
// at start (Unix seconds).
func closedBucket(start int64, step time.Duration, wc *activitypb.WindowCounts) windows.Bucket {
	return windows.Bucket{Start: time.Unix(start, 0).UTC(), Step: step, Total: wc.GetTotal(), Endpoints: wc.GetEndpoints(),
		Status: codecs.StatusMapOf(wc), Final: true}
}

// addRow adds the row's open buckets and its latest close, where the view
// has none, to found.
func (m *Merger) addRow(client string, step time.Duration, lo, hi int64, found map[int64]windows.Bucket) error {
	if m.rows == nil {
		return nil
	}
	row, err := m.rows.Get(client)
	if err != nil || row == nil {
		return err
	}
	sec := int64(step / time.Second)
	var names []string
	add := func(b *activitypb.WindowBucket, final bool) {
		if b.GetStepSeconds() != sec || b.GetStartUnix() < lo || b.GetStartUnix() > hi {
			return
		}
		if _, ok := found[b.GetStartUnix()]; ok {
			return
		}
		if names == nil {
			names = usage.EndpointNames(row)
		}
		found[b.GetStartUnix()] = windows.Bucket{Start: time.Unix(b.GetStartUnix(), 0).UTC(), Step: step, Total: b.GetTotal(),
			Endpoints: usage.Counts(b, names), Status: usage.Statuses(b, names), Final: final}
	}
	for _, b := range row.GetLastClosed().GetBuckets() {
		add(b, true)
	}
	for _, b := range row.GetOpenBuckets() {
		add(b, false)
	}
	return nil
}

// sorted lists the buckets with calls, oldest first.
func sorted(found map[int64]windows.Bucket) []windows.Bucket {
	out := make([]windows.Bucket, 0, len(found))
	for _, b := range found {
		if b.Total > 0 {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b windows.Bucket) int { return a.Start.Compare(b.Start) })
	return out
}

// Range sums client's usage over the last window (e.g. "the last 5
// minutes"), relative to now: the buckets of the finest step that fits,
// whose start lies in [now-window, now] (windows.Config.SumLast).
func (m *Merger) Range(client string, window time.Duration) (windows.Sum, error) {
	return m.cfg.SumLast(m.Series, client, window, m.now())
}

// pruneLoop deletes, from spec's view's local storage, buckets older than
// any query may ask for, every spec.PruneEvery(); Kafka's retention drops
// them from the topic. It stops when ctx ends or the views stop (viewsDone).
func (w *Windows) pruneLoop(ctx, viewsDone context.Context, spec windows.Spec) {
	every := spec.PruneEvery()
	v := w.views[spec.Step]
	select {
	case <-ctx.Done():
		return
	case <-viewsDone.Done():
		return
	case <-v.WaitRunning():
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if n, err := w.Prune(spec.Step, w.now()); err != nil {
			w.log.Warn("pruning windowed view failed", "topic", windows.Topic(spec.Step), "err", err)
		} else if n > 0 {
			w.log.Info("pruned windowed view", "topic", windows.Topic(spec.Step), "deleted", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-viewsDone.Done():
			return
		case <-t.C:
		}
	}
}

// Prune deletes the buckets of step that start before now minus the step's
// retention and one step from the view's local storage (windows.Prune), and
// says how many.
func (w *Windows) Prune(step time.Duration, now time.Time) (int, error) {
	v, ok := w.views[step]
	spec, _ := w.cfg.Spec(step)
	if !ok {
		return 0, fmt.Errorf("step %s is not kept", windows.FormatDuration(step))
	}
	it, err := v.Iterator()
	if err != nil {
		return 0, err
	}
	defer it.Release()
	return windows.Prune(viewKeys{it}, spec.PruneBefore(now), func(key string) (bool, error) {
		// Evict deletes in the partition of the key's client. A record
		// written before windowed topics were partitioned by client sits
		// elsewhere and stays (README, upgrade note); Has tells them apart.
		if here, err := v.Has(key); err != nil || !here {
			return false, err
		}
		return true, v.Evict(key)
	})
}

// viewKeys is a view's iterator as windows.Keys: goka's merged iterator
// stands on the key a Seek found only after Next.
type viewKeys struct{ goka.Iterator }

func (k viewKeys) Seek(key string) bool { return k.Iterator.Seek(key) && k.Iterator.Next() }

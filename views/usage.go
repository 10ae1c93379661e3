// Package views gives typed read access to the usage table.
package views

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/tablestore"
	"github.com/inarious/inarious/internal/top"
	"github.com/inarious/inarious/processors/usage"
)

// Usage reads the usage table of the usage processor group, and keeps an
// index of its clients by total calls (see Top).
type Usage struct {
	view *goka.View
	top  *top.Index // nil without the index
}

// NewUsage builds a view of the usage table with local storage under dataDir
// and its top-clients index. Extra options come after the defaults, except
// that the index sets the storage builder and the update callback last (an
// option setting either is overridden: the index follows the storage's
// writes, so a callback writing elsewhere would leave it stale).
func NewUsage(cfg kafka.Config, dataDir string, log *slog.Logger, opts ...goka.ViewOption) (*Usage, error) {
	return newUsage(cfg, dataDir, log, true, opts)
}

// NewUsageWithoutIndex is the plain view, for measuring what the index costs
// (inarious-bench recovery). Its Page, Clients and the other index reads
// answer as for an empty table.
func NewUsageWithoutIndex(cfg kafka.Config, dataDir string, log *slog.Logger, opts ...goka.ViewOption) (*Usage, error) {
	return newUsage(cfg, dataDir, log, false, opts)
}

func newUsage(cfg kafka.Config, dataDir string, log *slog.Logger, indexed bool, opts []goka.ViewOption) (*Usage, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	sc := cfg.Sarama()
	store := tablestore.Builder(filepath.Join(dataDir, "view"), tablestore.DefaultOptions())
	u := &Usage{}
	base := []goka.ViewOption{
		goka.WithViewClientID(cfg.ClientID),
		goka.WithViewHasher(kafka.Hasher),
		goka.WithViewStorageBuilder(store),
		goka.WithViewTopicManagerBuilder(cfg.TopicManagerBuilder()),
		goka.WithViewConsumerSaramaBuilder(kafka.TableConsumerBuilder(sc)),
		goka.WithViewLogger(kafka.GokaLogger(log)),
		// Keep serving the last state while the broker is away, and reconnect.
		goka.WithViewAutoReconnect(),
		// goka's reconnect backoff grows by 10 s per retry up to 2 min, so after
		// an outage the view would lag the returned broker by up to that long.
		goka.WithViewBackoffBuilder(reconnectBackoff),
	}
	all := append(base, opts...)
	if indexed {
		u.top = top.New()
		// Local storage holds what a warm start does not replay: load it into
		// the index when goka opens it, before the partition's first update;
		// rank the partition once goka marks it recovered.
		all = append(all,
			goka.WithViewStorageBuilder(top.Indexing(store, string(usage.Table), u.top)),
			goka.WithViewCallback(goka.DefaultUpdate))
	}
	v, err := goka.NewView(cfg.Brokers, usage.Table, new(codecs.ClientUsage), all...)
	if err != nil {
		return nil, fmt.Errorf("usage view: %w", err)
	}
	u.view = v
	return u, nil
}

// Stats are goka's per-partition view statistics, for metrics.
func (u *Usage) Stats(ctx context.Context) *goka.ViewStats { return u.view.Stats(ctx) }

// Goka is the underlying view, for goka's monitor page.
func (u *Usage) Goka() *goka.View { return u.view }

// Run keeps the view up to date until ctx ends.
func (u *Usage) Run(ctx context.Context) error { return u.view.Run(ctx) }

// Recovered reports whether the view has caught up with the table and is
// following it. It reads goka's locked state: View.Recovered races with the
// view closing its partitions at shutdown.
func (u *Usage) Recovered() bool { return u.view.CurrentState() == goka.ViewStateRunning }

// State is goka's view state, for readiness reporting.
func (u *Usage) State() goka.ViewState { return u.view.CurrentState() }

// Get returns one client's usage, or nil when the client is unknown.
func (u *Usage) Get(client string) (*activitypb.ClientUsage, error) {
	v, err := u.view.Get(client)
	if err != nil || v == nil {
		return nil, err
	}
	return v.(*activitypb.ClientUsage), nil
}

// Page returns up to limit clients by total calls, descending (ties by
// client), after the row at key after (from the first when after is nil).
func (u *Usage) Page(after *top.Key, limit int) []top.Row {
	if u.top == nil {
		return nil
	}
	return u.top.Page(after, limit)
}

// Clients is the number of clients in the table, in O(1).
func (u *Usage) Clients() int {
	if u.top == nil {
		return 0
	}
	return u.top.Clients()
}

// Requests is the sum of all clients' totals.
func (u *Usage) Requests() uint64 {
	if u.top == nil {
		return 0
	}
	return u.top.Requests()
}

// Increments is the sum of every increase of a client's total the view has
// applied since it started, recovery included.
func (u *Usage) Increments() uint64 {
	if u.top == nil {
		return 0
	}
	return u.top.Increments()
}

// Version changes whenever the index does.
func (u *Usage) Version() uint64 {
	if u.top == nil {
		return 0
	}
	return u.top.Version()
}

// reconnectBackoff retries a lost broker after 1 s, 2 s, … at most 5 s apart.
func reconnectBackoff() (goka.Backoff, error) {
	return goka.NewSimpleBackoff(time.Second, 5*time.Second), nil
}

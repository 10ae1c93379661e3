// Package views gives typed read access to the tables: the usage group's
// (UsageReader, Usage, Windows) and the endpoints group's (EndpointReader,
// Endpoints). See the README ("How it fits together") for the rest.
package views

import (
	"context"
	"fmt"
	"path/filepath"

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
// and its top-clients index. WithViewOptions come after the defaults, except
// that the index sets the storage builder and the update callback last (an
// option setting either is overridden: the index follows the storage's
// writes, so a callback writing elsewhere would leave it stale).
func NewUsage(cfg kafka.Config, dataDir string, opts ...Option) (*Usage, error) {
	return newUsage(cfg, dataDir, true, settingsOf(opts))
}

// NewUsageWithoutIndex is the plain view, for measuring what the index costs
// (inarious-bench recovery). Its Page, Clients and the other index reads
// answer as for an empty table.
func NewUsageWithoutIndex(cfg kafka.Config, dataDir string, opts ...Option) (*Usage, error) {
	return newUsage(cfg, dataDir, false, settingsOf(opts))
}

func newUsage(cfg kafka.Config, dataDir string, indexed bool, s settings) (*Usage, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	store := tablestore.Builder(filepath.Join(dataDir, "view"), tablestore.DefaultOptions())
	u := &Usage{}
	all := append(append(cfg.ViewOptions(s.log), goka.WithViewStorageBuilder(store)), s.goka...)
	if indexed {
		u.top = top.New()
		// Local storage holds what a warm start does not replay: load it into
		// the index when goka opens it, before the partition's first update;
		// rank the partition once goka marks it recovered.
		all = append(all,
			goka.WithViewStorageBuilder(tablestore.Stack(store, top.Indexing(string(usage.Table), u.top))),
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

// Top returns up to limit clients of ranking r (by all their calls or by
// their calls to one service), descending (ties by client), after the row
// at key after (from the first when after is nil), with the ranking's
// counts.
func (u *Usage) Top(r top.Ranking, after *top.Key, limit int) top.Page {
	if u.top == nil {
		return top.Page{}
	}
	return u.top.Top(r, after, limit)
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

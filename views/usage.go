// Package views gives typed read access to the usage table.
package views

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/tablestore"
	"github.com/inarious/inarious/processors/usage"
)

// Usage reads the usage table of the usage processor group.
type Usage struct {
	view *goka.View
}

// NewUsage builds a view of the usage table with local storage under dataDir.
// Extra options (tests swap builders) come last and win.
func NewUsage(cfg kafka.Config, dataDir string, log *slog.Logger, opts ...goka.ViewOption) (*Usage, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	sc := cfg.Sarama()
	base := []goka.ViewOption{
		goka.WithViewClientID(cfg.ClientID),
		goka.WithViewHasher(kafka.Hasher),
		goka.WithViewStorageBuilder(tablestore.Builder(filepath.Join(dataDir, "view"), tablestore.DefaultOptions())),
		goka.WithViewTopicManagerBuilder(cfg.TopicManagerBuilder()),
		goka.WithViewConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(sc)),
		goka.WithViewLogger(kafka.GokaLogger(log)),
		// Keep serving the last state while the broker is away, and reconnect.
		goka.WithViewAutoReconnect(),
		// goka's reconnect backoff grows by 10 s per retry up to 2 min, so after
		// an outage the view would lag the returned broker by up to that long.
		goka.WithViewBackoffBuilder(reconnectBackoff),
	}
	v, err := goka.NewView(cfg.Brokers, usage.Table, new(codecs.ClientUsage), append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("usage view: %w", err)
	}
	return &Usage{view: v}, nil
}

// OnChange returns a view option calling fn after every table update the view
// stores (recovery included), with the decoded new value (nil on delete).
// fn runs on the partition's consumer goroutine, so it must not block.
func OnChange(fn func(client string, u *activitypb.ClientUsage)) goka.ViewOption {
	return goka.WithViewCallback(func(ctx goka.UpdateContext, s storage.Storage, key string, value []byte) error {
		if err := goka.DefaultUpdate(ctx, s, key, value); err != nil {
			return err
		}
		var u *activitypb.ClientUsage
		if value != nil {
			v, err := new(codecs.ClientUsage).Decode(value)
			if err != nil {
				// Stored already; an undecodable value only misses the feed.
				return nil
			}
			u = v.(*activitypb.ClientUsage)
		}
		fn(key, u)
		return nil
	})
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

// Each calls fn for every client in the table until fn returns false.
func (u *Usage) Each(fn func(*activitypb.ClientUsage) bool) error {
	it, err := u.view.Iterator()
	if err != nil {
		return err
	}
	defer it.Release()
	for it.Next() {
		v, err := it.Value()
		if err != nil {
			return fmt.Errorf("usage view: decode %q: %w", it.Key(), err)
		}
		if cu, ok := v.(*activitypb.ClientUsage); ok && !fn(cu) {
			break
		}
	}
	return it.Err()
}

// reconnectBackoff retries a lost broker after 1 s, 2 s, … at most 5 s apart.
func reconnectBackoff() (goka.Backoff, error) {
	return goka.NewSimpleBackoff(time.Second, 5*time.Second), nil
}

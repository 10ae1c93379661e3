package alerts

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"

	"github.com/inarious/inarious/internal/kafka"
)

// Active follows Topic with a goka view and keeps, in memory, the alerts
// whose window has not ended: what GET /alerts and the dashboard show.
// It stores nothing else, so the view costs memory for the active alerts
// only, whatever the topic holds.
type Active struct {
	log  *slog.Logger
	view *goka.View
	now  func() time.Time

	mu     sync.Mutex
	alerts map[string]*Alert
}

// NewActive builds the view; Run runs it.
func NewActive(cfg kafka.Config, log *slog.Logger) (*Active, error) {
	if log == nil {
		log = slog.Default()
	}
	a := &Active{log: log, now: time.Now, alerts: map[string]*Alert{}}
	opts := append(cfg.ViewOptions(log),
		goka.WithViewStorageBuilder(storage.MemoryBuilder()),
		goka.WithViewCallback(a.update))
	v, err := goka.NewView(cfg.Brokers, goka.Table(Topic), AlertCodec{}, opts...)
	if err != nil {
		return nil, err
	}
	a.view = v
	return a, nil
}

// Run follows the topic until ctx ends.
func (a *Active) Run(ctx context.Context) error { return a.view.Run(ctx) }

// Recovered is whether the view has read the whole topic.
func (a *Active) Recovered() bool { return a.view.CurrentState() == goka.ViewStateRunning }

func (a *Active) update(_ goka.UpdateContext, _ storage.Storage, key string, value []byte) error {
	if value == nil {
		return nil
	}
	v, err := AlertCodec{}.Decode(value)
	if err != nil {
		a.log.Warn("alert record ignored: it does not decode", "key", key, "err", err)
		return nil
	}
	a.Add(v.(*Alert))
	return nil
}

// Add keeps al if its window has not ended.
func (a *Active) Add(al *Alert) {
	if !al.Active(a.now()) {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.alerts[al.ID]; !ok {
		a.alerts[al.ID] = al
	}
}

// List are the alerts active now, the latest fired first, forgetting
// those whose window ended.
func (a *Active) List() []*Alert {
	now := a.now()
	a.mu.Lock()
	out := make([]*Alert, 0, len(a.alerts))
	for id, al := range a.alerts {
		if !al.Active(now) {
			delete(a.alerts, id)
			continue
		}
		out = append(out, al)
	}
	a.mu.Unlock()
	slices.SortFunc(out, func(x, y *Alert) int {
		if c := y.FiredAt.Compare(x.FiredAt); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	return out
}

// Count is how many alerts are active now.
func (a *Active) Count() int { return len(a.List()) }

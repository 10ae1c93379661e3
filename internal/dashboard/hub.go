// Package dashboard serves the live usage dashboard: an embedded page fed by
// server-sent events built from the usage view's changes.
package dashboard

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/top"
)

// Source is the read side the hub needs (views.Usage in production): the
// top-clients index for rankings and totals, the table for a client's
// endpoints.
type Source interface {
	Get(client string) (*activitypb.ClientUsage, error)
	Recovered() bool
	Page(after *top.Key, limit int) []top.Row
	Clients() int
	Requests() uint64
	Increments() uint64
	Version() uint64
}

// Refresher is a Source that reads its state ahead of a snapshot (one
// fetch for the tick instead of one per call). The hub calls Refresh at
// the start of each tick while anyone subscribes.
type Refresher interface {
	Refresh()
}

// Snapshot is one server-sent event: the state of the dashboard.
type Snapshot struct {
	Time      time.Time         `json:"time"`
	Recovered bool              `json:"recovered"`
	Clients   int               `json:"clients"`
	Requests  uint64            `json:"requests"` // sum of all clients' totals
	Events    uint64            `json:"events"`   // counted since this process started, after recovery
	Rate      float64           `json:"rate"`     // events per second over the last rateWindow
	Top       []codecs.UsageDoc `json:"top"`
}

// TopClients is how many clients a snapshot shows.
const TopClients = 10

const (
	defaultInterval = 250 * time.Millisecond
	rateWindow      = 2 * time.Second
	// idleEvery resends while nothing changes, so the rate decays to zero.
	idleEvery = time.Second
)

// Hub turns the index's state into coalesced snapshots for any number of
// subscribers. A tick costs O(log n + top) whatever the number of clients,
// and without subscribers the hub does not tick at all. Every subscriber has
// a one-slot buffer that holds the newest snapshot, so a slow one skips
// snapshots instead of holding up the others.
type Hub struct {
	src      Source // set by Run
	log      *slog.Logger
	interval time.Duration
	top      int
	wake     chan struct{} // a subscriber arrived

	mu     sync.Mutex
	dirty  bool // a new subscriber wants a fresh snapshot
	subs   map[chan []byte]struct{}
	closed bool
	last   []byte

	// Owned by the goroutine that ticks.
	counting    bool   // the view has recovered: increments are live events
	baseline    uint64 // src.Increments() when it did
	lastVersion uint64
	samples     []rateSample
}

type rateSample struct {
	at     time.Time
	events uint64
}

// NewHub returns a hub; start it with Run.
func NewHub(log *slog.Logger) *Hub {
	if log == nil {
		log = slog.Default()
	}
	return &Hub{
		log: log, interval: defaultInterval, top: TopClients,
		wake: make(chan struct{}, 1),
		subs: make(map[chan []byte]struct{}),
	}
}

// Subscribe returns a channel of JSON snapshots, primed with the latest one,
// and a cancel func that must be called when the subscriber leaves. The
// channel is closed when the hub closes.
func (h *Hub) Subscribe() (<-chan []byte, func()) {
	ch := make(chan []byte, 1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		close(ch)
		return ch, func() {}
	}
	h.subs[ch] = struct{}{}
	if h.last != nil {
		ch <- h.last
	}
	h.dirty = true // h.last may be stale: not rebuilt while nobody listened
	select {
	case h.wake <- struct{}{}:
	default:
	}
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[ch]; ok {
			delete(h.subs, ch)
			close(ch)
		}
	}
}

// Subscribers is the number of connected subscribers.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Close ends every subscription; the HTTP server calls it on shutdown so
// event streams do not hold Shutdown up.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for ch := range h.subs {
		delete(h.subs, ch)
		close(ch)
	}
}

// Run publishes snapshots at most every interval while anyone subscribes,
// until ctx ends; then it closes the hub. Without subscribers (once the view
// has recovered) it waits for one without a timer.
func (h *Hub) Run(ctx context.Context, src Source) {
	defer h.Close()
	h.src = src
	var lastSent time.Time
	for {
		if h.counting && h.Subscribers() == 0 {
			h.samples = h.samples[:0] // the rate starts over with the next subscriber
			select {
			case <-ctx.Done():
				return
			case <-h.wake:
			}
			if h.tick(time.Now(), lastSent) { // answer the newcomer at once
				lastSent = time.Now()
			}
		}
		if !h.tickWhileNeeded(ctx, &lastSent) {
			return
		}
	}
}

// tickWhileNeeded ticks until nobody listens (and the view has recovered);
// it reports false when ctx ended.
func (h *Hub) tickWhileNeeded(ctx context.Context, lastSent *time.Time) bool {
	t := time.NewTicker(h.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-h.wake:
		case now := <-t.C:
			if h.tick(now, *lastSent) {
				*lastSent = now
			}
			if h.counting && h.Subscribers() == 0 {
				return true
			}
		}
	}
}

// tick samples the rate and, if anyone listens and something changed (or the
// rate needs refreshing), sends a snapshot. It reports whether it sent.
func (h *Hub) tick(now, lastSent time.Time) bool {
	if r, ok := h.src.(Refresher); ok && h.Subscribers() > 0 {
		r.Refresh()
	}
	recovered := h.src.Recovered()
	if recovered && !h.counting {
		// Recovery replays history; only later increments make the event rate.
		h.counting, h.baseline = true, h.src.Increments()
	}
	var events uint64
	if h.counting {
		events = h.src.Increments() - h.baseline
	}
	h.samples = append(h.samples, rateSample{now, events})
	for len(h.samples) > 1 && now.Sub(h.samples[1].at) >= rateWindow {
		h.samples = h.samples[1:]
	}
	version := h.src.Version()
	h.mu.Lock()
	if len(h.subs) == 0 || (!h.dirty && version == h.lastVersion && now.Sub(lastSent) < idleEvery) {
		h.mu.Unlock()
		return false
	}
	h.dirty = false
	h.mu.Unlock()
	h.lastVersion = version

	snap := Snapshot{
		Time: now.UTC(), Recovered: recovered, Events: events,
		Clients: h.src.Clients(), Requests: h.src.Requests(),
	}
	if first := h.samples[0]; now.Sub(first.at) > 0 {
		snap.Rate = float64(events-first.events) / now.Sub(first.at).Seconds()
	}
	rows := h.src.Page(nil, h.top)
	snap.Top = make([]codecs.UsageDoc, 0, len(rows))
	for _, row := range rows {
		u, err := h.src.Get(row.Client)
		if err != nil {
			h.log.Warn("dashboard: usage lookup failed", "client", row.Client, "err", err)
			continue
		}
		if u != nil {
			snap.Top = append(snap.Top, codecs.UsageDocOf(u))
		}
	}
	msg, err := json.Marshal(snap)
	if err != nil {
		h.log.Error("dashboard: encode snapshot", "err", err)
		return false
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	h.last = msg
	for ch := range h.subs {
		select {
		case ch <- msg:
		default:
			// Full: replace the unread snapshot with the newer one.
			select {
			case <-ch:
			default:
			}
			ch <- msg
		}
	}
	return true
}

// Package dashboard serves the live usage dashboard: an embedded page fed by
// server-sent events built from the usage view's changes.
package dashboard

import (
	"context"
	"encoding/json"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inarious/inarious/codecs/activitypb"
)

// Source is the read side the hub needs (views.Usage in production).
type Source interface {
	Get(client string) (*activitypb.ClientUsage, error)
	Recovered() bool
}

// Snapshot is one server-sent event: the state of the dashboard.
type Snapshot struct {
	Time      time.Time         `json:"time"`
	Recovered bool              `json:"recovered"`
	Clients   int               `json:"clients"`
	Requests  uint64            `json:"requests"` // sum of all clients' totals
	Events    uint64            `json:"events"`   // counted since this process started, after recovery
	Rate      float64           `json:"rate"`     // events per second over the last rateWindow
	Top       []ClientUsageJSON `json:"top"`
}

const (
	defaultInterval = 250 * time.Millisecond
	defaultTop      = 10
	rateWindow      = 2 * time.Second
	// idleEvery resends while nothing changes, so the rate decays to zero.
	idleEvery = time.Second
)

// Hub turns table updates into coalesced snapshots for any number of
// subscribers. Observe never blocks; every subscriber has a one-slot buffer
// that holds the newest snapshot, so a slow one skips snapshots instead of
// holding up the others.
type Hub struct {
	src       Source // set by Run
	log       *slog.Logger
	interval  time.Duration
	top       int
	recovered atomic.Bool

	mu      sync.Mutex
	totals  map[string]uint64
	events  uint64
	dirty   bool
	subs    map[chan []byte]struct{}
	closed  bool
	last    []byte
	samples []rateSample
}

type rateSample struct {
	at     time.Time
	events uint64
}

// NewHub returns a hub; feed it with Observe (views.OnChange(hub.Observe))
// and start it with Run.
func NewHub(log *slog.Logger) *Hub {
	if log == nil {
		log = slog.Default()
	}
	return &Hub{
		log: log, interval: defaultInterval, top: defaultTop,
		totals: make(map[string]uint64),
		subs:   make(map[chan []byte]struct{}),
	}
}

// Observe records a table update (u nil: the client was deleted). It runs on
// the view's consumer goroutines, so it only touches memory.
func (h *Hub) Observe(client string, u *activitypb.ClientUsage) {
	recovered := h.recovered.Load()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dirty = true
	if u == nil {
		delete(h.totals, client)
		return
	}
	old, total := h.totals[client], u.GetTotal()
	h.totals[client] = total
	// Recovery replays history; only live increments make the event rate.
	if recovered && total > old {
		h.events += total - old
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

// Run publishes snapshots at most every interval, reading clients' details
// from src, until ctx ends; then it closes the hub.
func (h *Hub) Run(ctx context.Context, src Source) {
	defer h.Close()
	h.src = src
	t := time.NewTicker(h.interval)
	defer t.Stop()
	var lastSent time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if h.tick(now, lastSent) {
				lastSent = now
			}
		}
	}
}

// tick samples the rate and, if anyone listens and something changed (or the
// rate needs refreshing), sends a snapshot. It reports whether it sent.
func (h *Hub) tick(now, lastSent time.Time) bool {
	recovered := h.src.Recovered()
	h.recovered.Store(recovered)
	h.mu.Lock()
	h.samples = append(h.samples, rateSample{now, h.events})
	for len(h.samples) > 1 && now.Sub(h.samples[1].at) >= rateWindow {
		h.samples = h.samples[1:]
	}
	if len(h.subs) == 0 || (!h.dirty && now.Sub(lastSent) < idleEvery) {
		h.mu.Unlock()
		return false
	}
	h.dirty = false
	snap := Snapshot{Time: now.UTC(), Clients: len(h.totals), Events: h.events}
	if first := h.samples[0]; now.Sub(first.at) > 0 {
		snap.Rate = float64(h.events-first.events) / now.Sub(first.at).Seconds()
	}
	type ct struct {
		client string
		total  uint64
	}
	all := make([]ct, 0, len(h.totals))
	for c, t := range h.totals {
		all = append(all, ct{c, t})
		snap.Requests += t
	}
	h.mu.Unlock()

	sort.Slice(all, func(i, j int) bool {
		if all[i].total != all[j].total {
			return all[i].total > all[j].total
		}
		return all[i].client < all[j].client
	})
	snap.Recovered = recovered
	snap.Top = make([]ClientUsageJSON, 0, min(h.top, len(all)))
	for _, c := range all[:min(h.top, len(all))] {
		u, err := h.src.Get(c.client)
		if err != nil {
			h.log.Warn("dashboard: usage lookup failed", "client", c.client, "err", err)
			continue
		}
		if u != nil {
			snap.Top = append(snap.Top, usageJSON(u))
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

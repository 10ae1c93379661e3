// Package dashboard serves the live usage dashboard: an embedded page fed by
// server-sent events built from the usage tables (views.UsageReader, local
// or routed) and, with WithEndpoints, the endpoints table
// (views.EndpointReader). See the README for the rest.
package dashboard

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/top"
	"github.com/inarious/inarious/views"
)

// Snapshot is one server-sent event: the state of the dashboard.
type Snapshot struct {
	Time      time.Time         `json:"time"`
	Recovered bool              `json:"recovered"`
	Clients   int               `json:"clients"`
	Requests  uint64            `json:"requests"` // sum of all clients' totals
	Events    uint64            `json:"events"`   // counted since this process started, after recovery
	Rate      float64           `json:"rate"`     // events per second over the last rateWindow
	Top       []codecs.UsageDoc `json:"top"`
	// Endpoints is the encoded EndpointsPanel, absent without WithEndpoints.
	Endpoints json.RawMessage `json:"endpoints,omitempty"`
	// Alerts are the alerts active now, latest first (at most MaxAlerts),
	// absent without WithAlerts.
	Alerts []AlertRow `json:"alerts,omitzero"`
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
// subscribers. A tick costs O(log n + top) whatever the number of clients
// (plus, once per endpointsEvery, two endpoint lists, the busiest endpoint
// and its chart), and without subscribers the hub does not tick at all. Every subscriber has
// a one-slot buffer that holds the newest snapshot, so a slow one skips
// snapshots instead of holding up the others.
type Hub struct {
	src      views.UsageReader // set by Run
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
	counting bool     // the table has recovered: rises of its calls are live events
	events   uint64   // every rise of the table's calls since then
	lastTop  top.Page // the last page read, to tell whether anything changed
	failing  bool     // the last read failed (logged once)
	samples  []rateSample

	// The endpoint panels, nil eps without WithEndpoints; the rest is owned
	// by the goroutine that ticks.
	eps        views.EndpointReader
	epsAt      time.Time       // when the panel was last read (or tried)
	epsPanel   json.RawMessage // the last panel read, sent with every snapshot
	epsFailing bool

	chartsMu sync.Mutex
	charts   map[string]cachedChart // latency charts by endpoint, for the route

	// The active alerts, nil without WithAlerts; lastAlerts is owned by
	// the goroutine that ticks.
	alerts     func() []AlertRow
	lastAlerts []AlertRow
}

type rateSample struct {
	at     time.Time
	events uint64
}

// Option configures NewHub.
type Option func(*Hub)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(log *slog.Logger) Option { return func(h *Hub) { h.log = log } }

// NewHub returns a hub; start it with Run.
func NewHub(opts ...Option) *Hub {
	h := &Hub{
		log: slog.Default(), interval: defaultInterval, top: TopClients,
		wake:   make(chan struct{}, 1),
		subs:   make(map[chan []byte]struct{}),
		charts: make(map[string]cachedChart),
	}
	for _, o := range opts {
		o(h)
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	return h
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
func (h *Hub) Run(ctx context.Context, src views.UsageReader) {
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
// Without subscribers it reads the table only once, when it has recovered,
// to start counting from there.
func (h *Hub) tick(now, lastSent time.Time) bool {
	recovered := h.src.Recovered()
	if h.Subscribers() == 0 && (!recovered || h.counting) {
		return false
	}
	page, err := h.src.Top(top.AllCalls, nil, h.top)
	if err != nil {
		if !h.failing {
			h.log.Warn("dashboard: top clients not available", "err", err)
		}
		h.failing = true
		return false
	}
	h.failing = false
	switch {
	case recovered && !h.counting:
		// Recovery replays history; only later rises make the event rate.
		h.counting = true
	case h.counting && page.Requests > h.lastTop.Requests:
		h.events += page.Requests - h.lastTop.Requests
	}
	changed := page.Requests != h.lastTop.Requests || page.Clients != h.lastTop.Clients || !slices.Equal(page.Rows, h.lastTop.Rows)
	h.lastTop = page
	if h.eps != nil && h.Subscribers() > 0 && h.refreshEndpoints(now) {
		changed = true
	}
	var alerts []AlertRow
	if h.Subscribers() > 0 {
		var alertsChanged bool
		alerts, alertsChanged = h.readAlerts()
		changed = changed || alertsChanged
	}
	h.samples = append(h.samples, rateSample{now, h.events})
	for len(h.samples) > 1 && now.Sub(h.samples[1].at) >= rateWindow {
		h.samples = h.samples[1:]
	}
	h.mu.Lock()
	if len(h.subs) == 0 || (!h.dirty && !changed && now.Sub(lastSent) < idleEvery) {
		h.mu.Unlock()
		return false
	}
	h.dirty = false
	h.mu.Unlock()

	snap := Snapshot{
		Time: now.UTC(), Recovered: recovered, Events: h.events,
		Clients: page.Clients, Requests: page.Requests, Endpoints: h.epsPanel, Alerts: alerts,
	}
	if first := h.samples[0]; now.Sub(first.at) > 0 {
		snap.Rate = float64(h.events-first.events) / now.Sub(first.at).Seconds()
	}
	rows := page.Rows
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

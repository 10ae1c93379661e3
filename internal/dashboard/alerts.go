package dashboard

import (
	"slices"
	"time"
)

// AlertRow is one active alert as the dashboard lists it.
type AlertRow struct {
	ID        string    `json:"id"`
	Rule      string    `json:"rule"`
	Kind      string    `json:"kind"`
	Key       string    `json:"key"` // the client or endpoint
	Window    string    `json:"window"`
	Threshold float64   `json:"threshold"`
	Limit     uint64    `json:"limit,omitempty"`
	Value     float64   `json:"value"`
	WindowEnd time.Time `json:"window_end"`
	FiredAt   time.Time `json:"fired_at"`
}

// MaxAlerts is how many active alerts a snapshot lists.
const MaxAlerts = 20

// WithAlerts adds the active-alerts panel, read from active (latest first)
// on every tick; without it the panel stays hidden.
func WithAlerts(active func() []AlertRow) Option {
	return func(h *Hub) { h.alerts = active }
}

// readAlerts is the panel's rows, and whether they changed since the last
// tick; nil without WithAlerts.
func (h *Hub) readAlerts() ([]AlertRow, bool) {
	if h.alerts == nil {
		return nil, false
	}
	rows := h.alerts()
	if rows == nil {
		rows = []AlertRow{}
	}
	rows = rows[:min(len(rows), MaxAlerts)]
	changed := !slices.EqualFunc(rows, h.lastAlerts, func(a, b AlertRow) bool { return a.ID == b.ID })
	h.lastAlerts = rows
	return rows, changed
}

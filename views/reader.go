package views

import (
	"time"

	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/top"
	"github.com/inarious/inarious/internal/windows"
)

// UsageReader is the read side of the usage group, however it is read: from
// local goka views (Local) or from the workers owning each client's
// partition (routing.Reader, --usage-source=workers). The usage routes and
// the dashboard read through it.
type UsageReader interface {
	// Get is one client's row, nil when the client is unknown.
	Get(client string) (*activitypb.ClientUsage, error)
	// Top is up to limit clients of ranking r (by all their calls, or by
	// their calls to one service) after the row at after (from the first
	// when nil), with the ranking's client and call counts. An error may say
	// how to answer it (problem.Answer).
	Top(r top.Ranking, after *top.Key, limit int) (top.Page, error)
	// Windows is the windowing kept; empty when windowed usage is off.
	Windows() windows.Config
	// Series is client's buckets of step whose start lies in [from, to].
	Series(client string, step time.Duration, from, to time.Time) ([]windows.Bucket, error)
	// Range sums client's buckets over the last window, relative to now.
	Range(client string, window time.Duration) (windows.Sum, error)
	// Recovered reports whether answers cover the whole table.
	Recovered() bool
}

// Local reads the usage table and its windowed topics from local views.
type Local struct {
	Table *Usage
	// Windowed is nil when windowed usage is off.
	Windowed *Windows
}

var _ UsageReader = Local{}

func (l Local) Get(client string) (*activitypb.ClientUsage, error) { return l.Table.Get(client) }

func (l Local) Top(r top.Ranking, after *top.Key, limit int) (top.Page, error) {
	return l.Table.Top(r, after, limit), nil
}

func (l Local) Windows() windows.Config {
	if l.Windowed == nil {
		return windows.Config{}
	}
	return l.Windowed.Config()
}

func (l Local) Series(client string, step time.Duration, from, to time.Time) ([]windows.Bucket, error) {
	if l.Windowed == nil {
		return nil, errWindowsOff
	}
	return l.Windowed.Series(client, step, from, to)
}

func (l Local) Range(client string, window time.Duration) (windows.Sum, error) {
	if l.Windowed == nil {
		return windows.Sum{}, errWindowsOff
	}
	return l.Windowed.Range(client, window)
}

// Recovered: the table's view and every windowed view follow their topics.
func (l Local) Recovered() bool {
	return l.Table.Recovered() && (l.Windowed == nil || l.Windowed.Recovered())
}

var errWindowsOff = &windows.QueryError{Msg: "windowed usage is off"}

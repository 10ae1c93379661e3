package windows

import (
	"strings"
	"time"
)

// The routes' windowed query parameters, parsed once for every table
// served with windows (usage, endpoints), so they answer alike.

// ParseTime reads a series bound: "now", a duration before now ("-1h",
// "-2d") or RFC 3339; empty is def.
func ParseTime(v string, def, now time.Time) (time.Time, bool) {
	switch {
	case v == "":
		return def, true
	case !timeSyntax.MatchString(v):
		return time.Time{}, false
	case v == "now":
		return now, true
	case strings.HasPrefix(v, "-"):
		d, err := ParseDuration(v[1:])
		if err != nil || d < 0 {
			return time.Time{}, false
		}
		return now.Add(-d), true
	}
	t, err := time.Parse(time.RFC3339, v)
	return t, err == nil
}

// ParseSeries reads a series query's step, from and to parameters at now
// (defaults: the finest kept step, the last hour) and checks them
// (CheckSeries); a *QueryError says what is wrong.
func (c Config) ParseSeries(step, from, to string, now time.Time) (time.Duration, time.Time, time.Time, error) {
	var st time.Duration
	if len(c.Specs) > 0 {
		st = c.Specs[0].Step
	}
	if step != "" {
		d, err := ParseDuration(step)
		if err != nil {
			return 0, time.Time{}, time.Time{}, queryErr("step must be a duration such as 1m, 1h or 1d")
		}
		st = d
	}
	f, ok := ParseTime(from, now.Add(-time.Hour), now)
	if !ok {
		return 0, time.Time{}, time.Time{}, queryErr("from must be now, a duration before now such as -1h, or an RFC 3339 time")
	}
	t, ok := ParseTime(to, now, now)
	if !ok {
		return 0, time.Time{}, time.Time{}, queryErr("to must be now, a duration before now such as -1h, or an RFC 3339 time")
	}
	if err := c.CheckSeries(st, f, t, now); err != nil {
		return 0, time.Time{}, time.Time{}, err
	}
	return st, f, t, nil
}

// ParseWindow reads a range query's window parameter ("5m", "7d") and
// checks that PlanRange can answer it at now.
func (c Config) ParseWindow(window string, now time.Time) (time.Duration, error) {
	if strings.HasPrefix(window, "-") {
		return 0, queryErr("window must be positive")
	}
	d, err := ParseDuration(window)
	if err != nil {
		return 0, queryErr("window must be a duration such as 5m, 1h or 7d")
	}
	if _, _, _, err := c.PlanRange(d, now); err != nil {
		return 0, err
	}
	return d, nil
}

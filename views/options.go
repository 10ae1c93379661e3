package views

import (
	"log/slog"
	"time"

	"github.com/lovoo/goka"
)

// Option configures the views NewUsage, NewWindows and NewEndpoints build.
type Option func(*settings)

type settings struct {
	log  *slog.Logger
	goka []goka.ViewOption
	now  func() time.Time
}

// WithLogger logs to log (nil or absent: slog.Default()).
func WithLogger(log *slog.Logger) Option { return func(s *settings) { s.log = log } }

// WithViewOptions adds goka view options to every view built, after the
// views' own, so they win (tests swap builders); see NewUsage for what its
// top-clients index sets last.
func WithViewOptions(opts ...goka.ViewOption) Option {
	return func(s *settings) { s.goka = append(s.goka, opts...) }
}

// WithNow sets the clock windowed queries are relative to (default
// time.Now), in NewWindows and NewEndpoints; NewUsage has no use for it.
func WithNow(now func() time.Time) Option { return func(s *settings) { s.now = now } }

func settingsOf(opts []Option) settings {
	s := settings{now: time.Now}
	for _, o := range opts {
		o(&s)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s
}

package stream

import (
	"log/slog"

	"github.com/lovoo/goka"
)

// Option configures NewProcessor, Run and NewTableCache.
type Option func(*settings)

type settings struct {
	log  *slog.Logger
	goka []goka.ProcessorOption
}

// WithLogger logs to log (nil or absent: slog.Default()).
func WithLogger(log *slog.Logger) Option { return func(s *settings) { s.log = log } }

// WithProcessorOptions adds goka processor options after stream's own, so
// they win (tests swap builders).
func WithProcessorOptions(opts ...goka.ProcessorOption) Option {
	return func(s *settings) { s.goka = append(s.goka, opts...) }
}

func settingsOf(opts []Option) settings {
	var s settings
	for _, o := range opts {
		o(&s)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s
}

package kafka

import (
	"fmt"
	"log/slog"

	"github.com/lovoo/goka"
)

// GokaLogger adapts log (nil: slog.Default()) for goka's logger options.
// goka logs partition state changes and retried errors through Printf, so
// they become info records.
func GokaLogger(log *slog.Logger) goka.Logger {
	if log == nil {
		log = slog.Default()
	}
	return gokaLogger{log.With("component", "goka")}
}

type gokaLogger struct{ log *slog.Logger }

func (l gokaLogger) Print(v ...any)                 { l.log.Info(fmt.Sprint(v...)) }
func (l gokaLogger) Println(v ...any)               { l.log.Info(fmt.Sprint(v...)) }
func (l gokaLogger) Printf(format string, v ...any) { l.log.Info(fmt.Sprintf(format, v...)) }

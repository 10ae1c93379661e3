package gcpolicy

import (
	"log/slog"
	"runtime/debug"
	"testing"
)

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

func TestApplySetsPercentUnlessGOGCIsSet(t *testing.T) {
	before := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(before) })
	log := slog.New(slog.DiscardHandler)

	s := Apply(400, env(nil), log)
	if got := debug.SetGCPercent(100); got != 400 || s.GCPercent != 400 || s.FromEnv {
		t.Fatalf("without GOGC: runtime %d, settings %+v; want %d", got, s, 400)
	}

	debug.SetGCPercent(150) // as the runtime sets it from GOGC=150
	s = Apply(400, env(map[string]string{"GOGC": "150"}), log)
	if got := debug.SetGCPercent(150); got != 150 || s.GCPercent != 150 || !s.FromEnv {
		t.Fatalf("with GOGC=150: runtime %d, settings %+v; want 150 left alone", got, s)
	}

	debug.SetGCPercent(100)
	if s = Apply(0, env(nil), log); s.GCPercent != 100 || debug.SetGCPercent(100) != 100 {
		t.Fatalf("percent 0 must leave Go's default, got %+v", s)
	}
}

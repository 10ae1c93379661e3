// Package gcpolicy sets the Go garbage collector of Inarious' processes:
// the GC target (--gc-percent) and a soft memory limit under a container's
// memory limit. GOGC and GOMEMLIMIT in the environment win.
package gcpolicy

import (
	"log/slog"
	"runtime/debug"
	"strconv"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// memoryLimitRatio of a cgroup's memory limit becomes the Go heap's soft
// limit: near it the collector runs as often as it must, whatever the GC
// target, so a higher target cannot push a container over its limit.
const memoryLimitRatio = 0.9

// Settings are what Apply left in force.
type Settings struct {
	GCPercent   int    // -1: off
	FromEnv     bool   // GOGC was set, so percent was not applied
	MemoryLimit uint64 // bytes; 0: none
}

// Apply sets the GC target to percent (<= 0 leaves Go's default) unless
// GOGC is set, and, unless GOMEMLIMIT is set, a soft memory limit of 90 %
// of the cgroup memory limit when there is one.
func Apply(percent int, getenv func(string) string, log *slog.Logger) Settings {
	var s Settings
	if getenv("GOGC") != "" || percent <= 0 {
		s.FromEnv = getenv("GOGC") != ""
		s.GCPercent = debug.SetGCPercent(100)
		debug.SetGCPercent(s.GCPercent)
	} else {
		debug.SetGCPercent(percent)
		s.GCPercent = percent
	}
	if getenv("GOMEMLIMIT") == "" {
		if limit, err := memlimit.SetGoMemLimitWithOpts(memlimit.WithRatio(memoryLimitRatio), memlimit.WithProvider(memlimit.FromCgroup)); err != nil {
			log.Warn("no soft memory limit from the cgroup", "err", err)
		} else if limit > 0 {
			s.MemoryLimit = uint64(limit)
		}
	} else if l := debug.SetMemoryLimit(-1); l < 1<<62 {
		s.MemoryLimit = uint64(l)
	}
	log.Info("garbage collector", "gc_percent", percentString(s.GCPercent), "from_GOGC", s.FromEnv, "soft_memory_limit_bytes", s.MemoryLimit)
	return s
}

func percentString(p int) string {
	if p < 0 {
		return "off"
	}
	return strconv.Itoa(p)
}

package top

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkTopRecovery applies one update per client in changelog order
// (random client order), as a cold recovery does: "staged" as the view does
// it (map only, one sorted bulk load at the end), "incremental" with a tree
// insert per update (as after recovery).
func BenchmarkTopRecovery(b *testing.B) {
	b.Run("staged", func(b *testing.B) { benchRecovery(b, true) })
	b.Run("incremental", func(b *testing.B) { benchRecovery(b, false) })
}

func benchRecovery(b *testing.B, staged bool) {
	const n = 1_000_000
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff)
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(n, func(i, j int) { names[i], names[j] = names[j], names[i] })
	b.ResetTimer()
	cpu := cpuTime()
	for range b.N {
		top := New()
		for p := range int32(8) {
			if staged {
				top.Recovering(p)
			} else {
				top.shard(p)
			}
		}
		for i, c := range names {
			top.Set(int32(i%8), c, Usage{Total: 1, LastSeen: int64(i)})
		}
		for p := range int32(8) {
			top.Recovered(p)
		}
	}
	// CPU time says more than wall time on a shared machine.
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N)/1e6, "cpu-ms/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTopSeed loads 1M stored clients (in storage order, by name), as
// a warm start does, and ranks them.
func BenchmarkTopSeed(b *testing.B) {
	const n = 1_000_000
	rows := make([][]Stored, 8)
	for i := range n {
		c := fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff)
		rows[i%8] = append(rows[i%8], Stored{Client: c, Usage: Usage{Total: uint64(1 + i%3), LastSeen: int64(i)}})
	}
	for _, r := range rows {
		slices.SortFunc(r, func(a, b Stored) int { return strings.Compare(a.Client, b.Client) })
	}
	b.ResetTimer()
	cpu := cpuTime()
	for range b.N {
		top := New()
		for p, r := range rows {
			top.Recovering(int32(p))
			top.Seed(int32(p), r)
			top.Recovered(int32(p))
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N)/1e6, "cpu-ms/op")
}

// BenchmarkTopMemory reports the live heap the index holds per client,
// names included, after a cold recovery of 1M clients and one update each.
func BenchmarkTopMemory(b *testing.B) {
	const n = 1_000_000
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		top := New()
		for p := range int32(8) {
			top.Recovering(p)
		}
		for i := range n {
			top.Set(int32(i%8), fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff), Usage{Total: 1, LastSeen: int64(i)})
		}
		for p := range int32(8) {
			top.Recovered(p)
		}
		for i := range n {
			top.Set(int32(i%8), fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff), Usage{Total: 2, LastSeen: int64(i)})
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/client")
		runtime.KeepAlive(top)
	}
}

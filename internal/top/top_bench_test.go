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

	"github.com/inarious/inarious/codecs"
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
	rows := make([][]storedRow, 8)
	for i := range n {
		c := fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff)
		rows[i%8] = append(rows[i%8], storedRow{client: c, Usage: Usage{Total: uint64(1 + i%3), LastSeen: int64(i)}})
	}
	for _, r := range rows {
		slices.SortFunc(r, func(a, b storedRow) int { return strings.Compare(a.client, b.client) })
	}
	b.ResetTimer()
	cpu := cpuTime()
	for range b.N {
		top := New()
		for p, r := range rows {
			top.Recovering(int32(p))
			top.Seed(int32(p), rowsOf(r))
			top.Recovered(int32(p))
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N)/1e6, "cpu-ms/op")
}

// BenchmarkTopMemory reports the live heap the index holds per client,
// names included, after a cold recovery of 1M clients and one update each:
// every client calling the default service only (one service: no tree of
// its own), each client one of three services (a tree per service), and
// each client all three (a list of its own and three tree items).
func BenchmarkTopMemory(b *testing.B) {
	const n = 1_000_000
	services := [][]byte{nil, []byte("shop"), []byte("billing")}
	usage := func(i int, total uint64, spread string) Usage {
		u := Usage{Total: total, LastSeen: int64(i)}
		switch spread {
		case "one-service":
			u.Services = []codecs.ServiceCalls{{Service: nil, Calls: total, LastSeen: int64(i)}}
		case "one-of-three":
			u.Services = []codecs.ServiceCalls{{Service: services[i%3], Calls: total, LastSeen: int64(i)}}
		case "all-three":
			u.Total *= 3
			for _, s := range services {
				u.Services = append(u.Services, codecs.ServiceCalls{Service: s, Calls: total, LastSeen: int64(i)})
			}
		}
		return u
	}
	for _, spread := range []string{"no-services", "one-service", "one-of-three", "all-three"} {
		b.Run(spread, func(b *testing.B) {
			for range b.N {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				top := New()
				for p := range int32(8) {
					top.Recovering(p)
				}
				for i := range n {
					top.Set(int32(i%8), fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff), usage(i, 1, spread))
				}
				for p := range int32(8) {
					top.Recovered(p)
				}
				for i := range n {
					top.Set(int32(i%8), fmt.Sprintf("10.%d.%d.%d", i>>16&0xff, i>>8&0xff, i&0xff), usage(i, 2, spread))
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "B/client")
				runtime.KeepAlive(top)
			}
		})
	}
}

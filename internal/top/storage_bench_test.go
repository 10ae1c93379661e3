package top_test

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/lovoo/goka/storage"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/top"
)

// BenchmarkIndexingSet is the index's share of a table write, as the usage
// group's storage makes it: a row of 10,000 clients with five endpoints
// (two versions each, so every write moves the client) read and ranked,
// over an in-memory storage. services spreads the endpoints over that many
// services (and every write then moves the client in each of them).
func BenchmarkIndexingSet(b *testing.B) {
	for _, services := range []int{1, 3} {
		b.Run(fmt.Sprintf("services=%d", services), func(b *testing.B) {
			const clients = 10_000
			rows := make([][2][]byte, clients)
			names := make([]string, clients)
			routes := []string{"GET /usage/{client}", "GET /users/{id}", "POST /users", "PATCH /users/{id}", "GET /healthz"}
			for i := range rows {
				names[i] = fmt.Sprintf("10.0.%d.%d", i>>8, i&0xff)
				for v := range 2 {
					u := &activitypb.ClientUsage{Client: names[i], LastSeen: timestamppb.Now(), FirstSeen: timestamppb.Now(),
						Endpoints: map[string]*activitypb.EndpointUsage{}, AppliedOffsets: map[int32]int64{int32(i % 8): int64(i)}}
					for e, r := range routes {
						if s := e % services; s > 0 {
							r = fmt.Sprintf("svc-%d: %s", s, r)
						}
						n := uint64(1 + (i+e)%7 + v)
						u.Endpoints[r] = &activitypb.EndpointUsage{Count: n, LastSeen: u.LastSeen, StatusClasses: []uint64{0, n}}
						u.Total += n
					}
					enc, err := u.MarshalVT()
					if err != nil {
						b.Fatal(err)
					}
					rows[i][v] = enc
				}
			}
			idx := top.New()
			st, err := top.Indexing("usage-table", idx)(func(string, int32) (storage.Storage, error) {
				return storage.NewMemory(), nil
			})("usage-table", 0)
			if err != nil {
				b.Fatal(err)
			}
			if err := st.Open(); err != nil {
				b.Fatal(err)
			}
			if err := st.MarkRecovered(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu := cpuNow()
			var row []byte
			for i := range b.N {
				c := i % clients
				// The table encodes a row right before it writes it: its
				// bytes are in the cache.
				row = append(row[:0], rows[c][(i/clients)%2]...)
				if err := st.Set(names[c], row); err != nil {
					b.Fatal(err)
				}
			}
			// CPU time says more than wall time on a shared machine.
			b.ReportMetric(float64(cpuNow()-cpu)/float64(b.N), "cpu-ns/op")
		})
	}
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

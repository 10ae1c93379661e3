package dedupe

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/inarious/inarious/codecs"
)

// BenchmarkDecide is the stage's CPU per event: decode, hash, look the id
// up in a set holding a full window (24 slices of idsPerSlice ids) and
// queue the event, as one poll of 10,000 events.
func BenchmarkDecide(b *testing.B) {
	for _, idsPerSlice := range []int{0, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("held=%d", 24*idsPerSlice), func(b *testing.B) {
			s := New()
			set := newSeenSet(24 * time.Hour)
			t0 := time.Now().Add(-23 * time.Hour)
			next := uint64(1)
			for sl := range 24 {
				ids := make([]uint64, idsPerSlice)
				for i := range ids {
					ids[i] = next * 0x9e3779b97f4a7c15
					next++
				}
				set.add(t0.Add(time.Duration(sl)*time.Hour), ids)
			}
			var codec codecs.Activity
			records := make([]*kgo.Record, maxPoll)
			for i := range records {
				v, _ := codec.Encode(event(fmt.Sprintf("c%d", i%100), fmt.Sprintf("5b8efff798038103d269b633813fc60c-%016x", i)))
				records[i] = &kgo.Record{Value: v, Key: []byte("k")}
			}
			ss := &session{sets: map[int32]*seenSet{0: set}, pending: map[int32][]uint64{}, pendSet: map[uint64]struct{}{}}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r := records[i%len(records)]
				if i%len(records) == 0 {
					ss.resetFlush()
				}
				if err := s.decideOne(ctx, ss, set, r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

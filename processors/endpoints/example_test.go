package endpoints_test

import (
	"fmt"
	"time"

	"github.com/inarious/inarious/processors/endpoints"
)

// Merge applies a partial once: goka replays uncommitted input after a
// crash, and a partial whose Users offsets are not beyond the row's was
// merged before.
func ExampleRow_Merge() {
	partial := func(calls uint64, offsets map[int32]int64, durationsMS ...int64) *endpoints.Partial {
		p := &endpoints.Partial{Row: *endpoints.NewRow(), Offsets: offsets}
		p.Calls = calls
		for _, d := range durationsMS {
			p.Latency.Add(d * 1000)
		}
		return p
	}
	row := endpoints.NewRow()
	first := partial(2, map[int32]int64{0: 41, 3: 7}, 120, 80)
	fmt.Println(row.Merge(first))
	fmt.Println(row.Merge(first)) // the replay
	fmt.Println(row.Merge(partial(1, map[int32]int64{0: 42}, 300)))
	s := endpoints.Summarize("GET /users/{id}", row)
	fmt.Println(s.Calls, s.Latency.Timed, s.Latency.P50 > 110 && s.Latency.P50 < 130)
	// Output:
	// true
	// false
	// true
	// 3 3 true
}

// BucketKey keys an endpoint's bucket rows so that they sort by time and
// sit in the endpoint's partition.
func ExampleBucketKey() {
	start := time.Date(2026, 12, 6, 15, 0, 0, 0, time.UTC).Unix()
	key := endpoints.BucketKey("GET /users/{id}", time.Hour, start)
	endpoint, step, s, bucket, ok := endpoints.ParseKey(key)
	fmt.Println(endpoint, step, time.Unix(s, 0).UTC().Format(time.RFC3339), bucket, ok)
	fmt.Println(endpoints.PartitionOf(key, 8) == endpoints.PartitionOf("GET /users/{id}", 8))
	// Output:
	// GET /users/{id} 1h0m0s 2026-12-06T15:00:00Z true true
	// true
}

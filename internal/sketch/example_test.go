package sketch_test

import (
	"fmt"

	"github.com/inarious/inarious/internal/sketch"
)

// An endpoint's per-minute buckets each keep a Latency and a Distinct; the
// hour's answer merges the minutes' sketches, decoded from their table
// values.
func Example() {
	var stored [][2][]byte // per minute: the encoded Latency and Distinct
	for minute := range 60 {
		var lat sketch.Latency
		var clients sketch.Distinct
		for i := range 1000 {
			lat.Add(int64(1000 + i*minute))              // duration_us
			clients.Add(fmt.Sprintf("client-%d", i%250)) // the event's client
		}
		l, _ := lat.MarshalBinary()
		c, _ := clients.MarshalBinary()
		stored = append(stored, [2][]byte{l, c})
	}

	var hour sketch.Latency
	var hourClients sketch.Distinct
	for _, b := range stored {
		var lat sketch.Latency
		var clients sketch.Distinct
		if err := lat.UnmarshalBinary(b[0]); err != nil {
			panic(err)
		}
		if err := clients.UnmarshalBinary(b[1]); err != nil {
			panic(err)
		}
		hour.Merge(&lat)
		hourClients.Merge(&clients)
	}
	fmt.Println("calls:", hour.Count())
	for _, q := range []float64{0.5, 0.9, 0.95, 0.99} {
		fmt.Printf("p%.0f: %.0f µs\n", 100*q, hour.Quantile(q))
	}
	fmt.Println("distinct clients:", hourClients.Estimate())
	// The exact quantiles are 11944, 35839, 42608 and 52214 µs: each
	// estimate is within 1 %.

	// Output:
	// calls: 60000
	// p50: 11971 µs
	// p90: 35965 µs
	// p95: 42205 µs
	// p99: 52592 µs
	// distinct clients: 250
}

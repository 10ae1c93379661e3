package endpoints_test

import (
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/alerts"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/processors/endpoints"
)

// partial is one flush's partial of a bucket row: calls with the given
// duration (µs) and status, covering Users offset off of partition 0.
func partial(calls int, durationUS int64, status int32, off int64) []byte {
	p := &endpoints.Partial{Row: *endpoints.NewRow(), Offsets: map[int32]int64{0: off}}
	for range calls {
		p.Calls++
		if c, ok := codecs.StatusClass(status); ok {
			p.Status[c]++
		}
		p.Latency.Add(durationUS)
	}
	b, err := endpoints.PartialCodec{}.Encode(p)
	if err != nil {
		panic(err)
	}
	return b
}

func TestEndpointAlertsFireOncePerWindow(t *testing.T) {
	rules := alerts.NewRules()
	rules.Set(alerts.Rule{Name: "slow", Kind: alerts.EndpointP99, Endpoint: "GET /a", Window: "1m", Thresholds: []float64{100}, MinCalls: 10})
	rules.Set(alerts.Rule{Name: "failing", Kind: alerts.EndpointErrorRate, Endpoint: alerts.Any, Window: "1m", Thresholds: []float64{50}})
	gkt := tester.New(t)
	g := endpoints.New(endpoints.WithAlerts(alerts.NewEvaluator(rules)))
	proc, err := goka.NewProcessor(nil, g.Graph(), goka.WithTester(gkt), goka.WithHasher(endpoints.Hasher))
	if err != nil {
		t.Fatal(err)
	}
	testutil.RunProcessor(t, proc)
	q := gkt.NewQueueTracker(string(alerts.Topic))
	start := int64(1700000040)
	bucket := endpoints.BucketKey("GET /a", time.Minute, start)
	send := func(key string, b []byte) { gkt.Consume(string(endpoints.PartialsTopic), key, b) }

	send(bucket, partial(5, 500_000, 200, 1))    // slow, but fewer calls than min_calls
	send(bucket, partial(5, 1_000, 200, 2))      // 10 calls, p99 500 ms: crossed
	send(bucket, partial(100, 1_000, 200, 3))    // p99 back under 100 ms
	send(bucket, partial(50, 900_000, 200, 4))   // over again: the window fired already
	send(bucket, partial(2, 1_000, 200, 4))      // a replayed partial: skipped, nothing new
	send("GET /a", partial(50, 900_000, 500, 5)) // the all-time row is watched by no rule
	send(endpoints.BucketKey("GET /b", time.Minute, start), partial(3, 1_000, 503, 6))

	var got []*alerts.Alert
	for {
		_, v, ok := q.Next()
		if !ok {
			break
		}
		got = append(got, v.(*alerts.Alert))
	}
	if len(got) != 2 {
		t.Fatalf("alerts %+v, want the p99 of GET /a and the error rate of GET /b", got)
	}
	if a := got[0]; a.Rule != "slow" || a.Endpoint != "GET /a" || a.Value < 495 || a.Value > 505 || a.WindowStart.Unix() != start {
		t.Errorf("p99 alert %+v", a)
	}
	if a := got[1]; a.Rule != "failing" || a.Endpoint != "GET /b" || a.Value != 100 {
		t.Errorf("error-rate alert %+v", a)
	}
}

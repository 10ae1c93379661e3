package usage_test

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/processors/usage"
)

func statusEventAt(client, method, route string, status int32, at time.Time) []byte {
	b, err := proto.Marshal(&activitypb.BackendApiActivity{
		ClientHost: client, HttpMethod: method, Route: route, Client: client, HttpStatus: status, RequestTime: timestamppb.New(at),
	})
	if err != nil {
		panic(err)
	}
	return b
}

// classes is an endpoint's all-time classes.
func classes(ep *activitypb.EndpointUsage) codecs.StatusCounts {
	return codecs.StatusCountsOf(ep.GetStatusClasses())
}

// Each endpoint counts its calls by status class, in the row and in every
// granularity's open bucket; calls without a status (the original
// producer's events) count in no class, other statuses as "other".
func TestStatusClassesPerEndpoint(t *testing.T) {
	w := windows.Config{Specs: []windows.Spec{{Step: time.Minute, Retention: time.Hour}, {Step: time.Hour, Retention: 24 * time.Hour}}, Grace: time.Minute}
	gkt, u, clock := startWindowed(t, w)
	in := string(codecs.ActivityTopic)
	at := t0.Add(10 * time.Second)
	clock.Set(at) // the event without a request time falls in the same buckets
	for _, s := range []struct {
		method, route string
		status        int32
	}{
		{"GET", "/a", 200}, {"GET", "/a", 201}, {"GET", "/a", 404}, {"GET", "/a", 0},
		{"POST", "/b", 503}, {"POST", "/b", 302}, {"POST", "/b", 101}, {"POST", "/b", 999},
	} {
		gkt.Consume(in, "c", statusEventAt("c", s.method, s.route, s.status, at))
	}
	// An event of the original producer's schema: no status field at all.
	gkt.Consume(in, "c", originalEvent("c", "GET", "http://localhost:8000/a"))

	want := map[string]codecs.StatusCounts{
		"GET /a":  {codecs.Class2xx: 2, codecs.Class4xx: 1},
		"POST /b": {codecs.Class1xx: 1, codecs.Class3xx: 1, codecs.Class5xx: 1, codecs.ClassOther: 1},
	}
	r := row(t, gkt, "c")
	for ep, c := range want {
		if got := classes(r.GetEndpoints()[ep]); got != c {
			t.Errorf("%s classes %v, want %v", ep, got, c)
		}
	}
	if a := r.GetEndpoints()["GET /a"]; a.GetCount() != 5 {
		t.Errorf("GET /a count %d, want 5 (two without a status)", a.GetCount())
	}
	names := usage.EndpointNames(r)
	if len(r.GetOpenBuckets()) != 2 {
		t.Fatalf("open buckets %v, want one per granularity", r.GetOpenBuckets())
	}
	for _, b := range r.GetOpenBuckets() {
		got := usage.Statuses(b, names)
		if len(got) != len(want) || got["GET /a"] != want["GET /a"] || got["POST /b"] != want["POST /b"] || b.GetTotal() != 9 {
			t.Errorf("%ds bucket classes %v total %d, want %v and 9", b.GetStepSeconds(), got, b.GetTotal(), want)
		}
	}
	if s := u.Stats(); s.Processed != 9 {
		t.Errorf("stats %+v", s)
	}
}

// A closed bucket's emitted value carries its classes per endpoint.
func TestStatusClassesOnClose(t *testing.T) {
	gkt, _, _ := startWindowed(t, minutes)
	out := gkt.NewQueueTracker(windows.Topic(time.Minute))
	in := string(codecs.ActivityTopic)
	gkt.Consume(in, "c", statusEventAt("c", "GET", "/a", 200, t0.Add(time.Second)))
	gkt.Consume(in, "c", statusEventAt("c", "GET", "/a", 500, t0.Add(2*time.Second)))
	gkt.Consume(in, "c", statusEventAt("c", "GET", "/b", 0, t0.Add(3*time.Second)))
	gkt.Consume(in, "c", statusEventAt("c", "GET", "/b", 204, t0.Add(5*time.Minute))) // closes 12:00
	got := emitted(out)[windows.Key("c", t0.Unix())]
	if len(got) != 1 {
		t.Fatalf("12:00 emitted %v, want once", got)
	}
	status := codecs.StatusMapOf(got[0])
	if want := (codecs.StatusCounts{codecs.Class2xx: 1, codecs.Class5xx: 1}); len(status) != 1 || status["GET /a"] != want {
		t.Errorf("emitted classes %v, want only GET /a with %v (GET /b had no status)", status, want)
	}
	if got[0].GetEndpoints()["GET /b"] != 1 || got[0].GetTotal() != 3 {
		t.Errorf("emitted counts %v total %d", got[0].GetEndpoints(), got[0].GetTotal())
	}
}

// A replay adds no class, to the row or to a bucket.
func TestStatusClassesReplaysNotCountedTwice(t *testing.T) {
	gkt, u, _ := startWindowed(t, minutes, usage.WithValueCache(0))
	in := string(codecs.ActivityTopic)
	gkt.Consume(in, "c", statusEventAt("c", "GET", "/a", 404, t0))
	r := row(t, gkt, "c")
	before := proto.Clone(r)
	// The same input again: every offset at or below the watermark.
	r.AppliedOffsets = map[int32]int64{0: 1 << 40}
	before.(*activitypb.ClientUsage).AppliedOffsets = r.AppliedOffsets
	gkt.SetTableValue(usage.Table, "c", r)
	gkt.Consume(in, "c", statusEventAt("c", "GET", "/a", 404, t0))
	after := row(t, gkt, "c")
	if !proto.Equal(before, after) {
		t.Errorf("a replay changed the row:\n%v\n%v", before, after)
	}
	if got := classes(after.GetEndpoints()["GET /a"]); got != (codecs.StatusCounts{codecs.Class4xx: 1}) {
		t.Errorf("classes %v after the replay, want one 4xx", got)
	}
	if s := u.Stats(); s.Replays != 1 || s.Processed != 1 {
		t.Errorf("stats %+v", s)
	}

	ep := &activitypb.BackendApiActivity{Client: "c", HttpMethod: "GET", Route: "/a", HttpStatus: 500}
	row := &activitypb.ClientUsage{Client: "c"}
	for _, off := range []int64{3, 3, 2, 4} {
		apply(row, ep, usage.Position{Offset: off})
	}
	if got := classes(row.GetEndpoints()["GET /a"]); got != (codecs.StatusCounts{codecs.Class5xx: 2}) {
		t.Errorf("Apply of offsets 3, 3, 2, 4: classes %v, want 2 5xx", got)
	}
}

// Calls of endpoints beyond MaxEndpoints count their classes under the
// method's "(other)" endpoint, in the row and its buckets.
func TestStatusClassesOfOverflowEndpoint(t *testing.T) {
	row := &activitypb.ClientUsage{Client: "c"}
	for i := range usage.MaxEndpoints + 3 {
		status := int32(200)
		if i >= usage.MaxEndpoints {
			status = int32(400 + i%2*100) // 400, 500, 400
		}
		ev := &activitypb.BackendApiActivity{Client: "c", HttpMethod: "GET", Route: fmt.Sprintf("/r%d", i), HttpStatus: status,
			RequestTime: timestamppb.New(time.Unix(1700000000, 0))}
		apply(row, ev, usage.Position{Offset: int64(i)})
	}
	other := "GET " + usage.OtherEndpoint
	want := codecs.StatusCounts{codecs.Class4xx: 2, codecs.Class5xx: 1}
	if got := classes(row.GetEndpoints()[other]); got != want {
		t.Errorf("overflow classes %v, want %v", got, want)
	}
	names := usage.EndpointNames(row)
	for _, b := range row.GetOpenBuckets() {
		st := usage.Statuses(b, names)
		if st[other] != want || st["GET /r0"] != (codecs.StatusCounts{codecs.Class2xx: 1}) || len(st) != usage.MaxEndpoints+1 {
			t.Errorf("%ds bucket: overflow %v, /r0 %v, %d endpoints", b.GetStepSeconds(), st[other], st["GET /r0"], len(st))
		}
	}
}

// A row or bucket written before classes were kept goes on counting: its
// earlier calls stay classless, new ones get classes.
func TestStatusClassesOnOldRow(t *testing.T) {
	at := time.Unix(1700000000, 0)
	row := &activitypb.ClientUsage{Client: "c", Total: 2, LastWindowId: 1,
		Endpoints: map[string]*activitypb.EndpointUsage{"GET /a": {Count: 2, WindowId: 1}},
		OpenBuckets: []*activitypb.WindowBucket{{StepSeconds: 60, StartUnix: windows.StartUnix(at.UnixNano(), time.Minute),
			Total: 2, EndpointIds: []uint32{1}, Counts: []uint64{2}}}}
	apply(row, &activitypb.BackendApiActivity{Client: "c", HttpMethod: "GET", Route: "/a", HttpStatus: 200, RequestTime: timestamppb.New(at)},
		usage.Position{Offset: 1})
	ep := row.GetEndpoints()["GET /a"]
	if ep.GetCount() != 3 || classes(ep) != (codecs.StatusCounts{codecs.Class2xx: 1}) {
		t.Errorf("endpoint %v", ep)
	}
	b := row.GetOpenBuckets()[0]
	if b.GetTotal() != 3 || usage.Statuses(b, usage.EndpointNames(row))["GET /a"] != (codecs.StatusCounts{codecs.Class2xx: 1}) {
		t.Errorf("bucket %v", b)
	}
	// The two earlier calls are one pair "no status"; the 2xx has none.
	if !b.GetStatusClassed() || len(b.GetStatusKeys()) != 1 || b.GetStatusCounts()[0] != 2 {
		t.Errorf("bucket's pairs %v %v", b.GetStatusKeys(), b.GetStatusCounts())
	}
}

// A bucket stores no pair for 2xx calls, the common case: its classes add
// nothing to the row but a flag per bucket.
func TestStatusClassesOfSuccessfulCallsStoreNoPairs(t *testing.T) {
	row := &activitypb.ClientUsage{Client: "c"}
	at := time.Unix(1700000000, 0)
	for i := range 30 {
		apply(row, &activitypb.BackendApiActivity{Client: "c", HttpMethod: "GET", Route: fmt.Sprintf("/r%d", i%3), HttpStatus: 200 + int32(i%2),
			RequestTime: timestamppb.New(at)}, usage.Position{Offset: int64(i)})
	}
	names := usage.EndpointNames(row)
	for _, b := range row.GetOpenBuckets() {
		if !b.GetStatusClassed() || len(b.GetStatusKeys()) != 0 || len(b.GetStatusCounts()) != 0 {
			t.Errorf("%ds bucket: classed %v, pairs %v %v; want none", b.GetStepSeconds(), b.GetStatusClassed(), b.GetStatusKeys(), b.GetStatusCounts())
		}
		st := usage.Statuses(b, names)
		if len(st) != 3 || st["GET /r0"] != (codecs.StatusCounts{codecs.Class2xx: 10}) {
			t.Errorf("%ds bucket classes %v", b.GetStepSeconds(), st)
		}
	}
}

// BenchmarkRowEncode encodes a row of five endpoints after five minutes of
// calls (10 a second, default windows): without a status (the original
// producer's events), all 2xx, and a mix of 2xx, 3xx, 4xx and 5xx. It
// reports the row's size: the row is rewritten once per record-cache
// interval.
func BenchmarkRowEncode(b *testing.B) {
	for _, c := range []struct {
		name     string
		statuses []int32
	}{{"status=none", []int32{0}}, {"status=2xx", []int32{200}}, {"status=mixed", []int32{200, 200, 200, 201, 404, 500, 200, 304}}} {
		b.Run(c.name, func(b *testing.B) {
			row := &activitypb.ClientUsage{Client: "10.1.2.3"}
			start := time.Now().Add(-time.Hour)
			for i := range 3000 {
				ev := &activitypb.BackendApiActivity{Client: "10.1.2.3", HttpMethod: "GET", Route: fmt.Sprintf("/r%d", i%5),
					HttpStatus: c.statuses[i%len(c.statuses)], RequestTime: timestamppb.New(start.Add(time.Duration(i) * 100 * time.Millisecond))}
				usage.Apply(row, ev, usage.Position{Offset: int64(i)}, windows.Default(), time.Now())
			}
			var size int
			b.ReportAllocs()
			for b.Loop() {
				raw, err := codecs.ClientUsage{}.Encode(row)
				if err != nil {
					b.Fatal(err)
				}
				size = len(raw)
			}
			b.ReportMetric(float64(size), "bytes/row")
		})
	}
}

package routing

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/processors/usage"
)

func getSeries(t *testing.T, h http.Handler, client string, step time.Duration, from, to time.Time) *httptest.ResponseRecorder {
	t.Helper()
	q := url.Values{"client": {client}, "step": {strconv.Itoa(int(step / time.Second))},
		"from": {from.Format(time.RFC3339Nano)}, "to": {to.Format(time.RFC3339Nano)}}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, SeriesPath+"?"+q.Encode(), nil))
	return rec
}

// A worker answers the series of a client in a partition it holds, closed
// buckets from its joined windowed topic and open ones from the row, and
// refuses a client whose windowed partition it does not hold.
func TestWorkerServesSeriesOfItsOwnPartitions(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Minute)
	w := NewWorker(4, nil)
	h := w.Handler()
	win := windows.Config{Specs: []windows.Spec{{Step: time.Minute, Retention: time.Hour}}, Grace: 0}
	gkt := tester.New(t)
	u := usage.New(usage.WithWindows(win), usage.WithWindowJoins(), usage.WithClock(func() time.Time { return now }))
	proc, err := goka.NewProcessor(nil, u.Graph(), goka.WithTester(gkt), goka.WithStorageBuilder(u.WrapStorage(gkt.StorageBuilder())))
	if err != nil {
		t.Fatal(err)
	}
	w.SetProcessor(proc)
	stop := testutil.RunProcessor(t, proc)
	if rec := getSeries(t, h, "x", time.Minute, now.Add(-time.Hour), now); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("before SetWindows: %d, want 503", rec.Code)
	}
	w.SetWindows(win, u)

	// goka's tester holds one partition (0) of every topic: a client of
	// partition 0 of 4 is this worker's, one of another partition is not.
	var mine, other string
	for i := 0; mine == "" || other == ""; i++ {
		c := "198.51.100." + strconv.Itoa(i)
		if kafka.PartitionOf(c, 4) == 0 {
			mine = c
		} else {
			other = c
		}
	}
	call := func(client string, status int32, at time.Time) {
		b, _ := proto.Marshal(&activitypb.BackendApiActivity{Client: client, ClientHost: client, HttpMethod: "GET", Route: "/a",
			HttpStatus: status, RequestTime: timestamppb.New(at)})
		gkt.Consume(string(codecs.ActivityTopic), client, b)
	}
	for _, c := range []string{mine, other} {
		call(c, 200, now.Add(-3*time.Minute))
		call(c, 500, now.Add(-3*time.Minute+time.Second))
		call(c, 404, now.Add(-time.Minute)) // closes the bucket of -3m
	}
	// The closed bucket reaches the join asynchronously: until then the
	// row's latest close answers for it, final either way.
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		rec := getSeries(t, h, mine, time.Minute, now.Add(-time.Hour), now)
		if rec.Code != http.StatusOK || rec.Header().Get(HeaderPartition) != "0" {
			return false, "status " + strconv.Itoa(rec.Code) + " " + rec.Body.String()
		}
		var got []windows.Bucket
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		ok := len(got) == 2 && got[0].Final && got[0].Total == 2 && got[0].Start.Equal(now.Add(-3*time.Minute)) &&
			!got[1].Final && got[1].Total == 1 && got[1].Endpoints["GET /a"] == 1 &&
			// Status classes travel with both.
			got[0].Status["GET /a"] == codecs.StatusCounts{codecs.Class2xx: 1, codecs.Class5xx: 1} &&
			got[1].Status["GET /a"] == codecs.StatusCounts{codecs.Class4xx: 1}
		return ok, rec.Body.String()
	})
	// Once the join has the closed bucket, its classes come from there.
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		start, limit := windows.KeyRange(mine, now.Add(-3*time.Minute).Unix(), now.Unix())
		var wc *activitypb.WindowCounts
		err := u.ScanWindow(windows.Topic(time.Minute), 0, start, limit, func(_ string, v []byte) error {
			d, err := new(codecs.WindowCounts).Decode(v)
			wc, _ = d.(*activitypb.WindowCounts)
			return err
		})
		return err == nil && codecs.StatusMapOf(wc)["GET /a"] == codecs.StatusCounts{codecs.Class2xx: 1, codecs.Class5xx: 1}, "joined bucket without its classes"
	})
	// The closed bucket is in the join, not only in the row.
	start, limit := windows.KeyRange(mine, now.Add(-3*time.Minute).Unix(), now.Unix())
	var joined int
	if err := u.ScanWindow(windows.Topic(time.Minute), 0, start, limit, func(string, []byte) error { joined++; return nil }); err != nil || joined != 1 {
		t.Errorf("joined records of %s: %d (err %v), want 1", mine, joined, err)
	}

	rec := getSeries(t, h, other, time.Minute, now.Add(-time.Hour), now)
	if rec.Code == http.StatusOK || rec.Header().Get(HeaderPartition) != strconv.Itoa(int(kafka.PartitionOf(other, 4))) {
		t.Errorf("client of a partition not held: %d (partition %q) %s, want a refusal naming its partition", rec.Code, rec.Header().Get(HeaderPartition), rec.Body)
	}
	if rec := getSeries(t, h, mine, 2*time.Minute, now.Add(-time.Hour), now); rec.Code != http.StatusBadRequest {
		t.Errorf("a step not kept: %d, want 400", rec.Code)
	}
	stop()
	if rec := getSeries(t, h, mine, time.Minute, now.Add(-time.Hour), now); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("after the processor stopped: %d, want 503", rec.Code)
	}
}

// seriesWorker fakes a worker's series endpoint: status and body for
// every read, naming the client's partition.
func seriesWorker(t *testing.T, status int, body string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(HeaderPartition, strconv.Itoa(int(ours(r.URL.Query().Get("client")))))
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// The reader's windowed reads return the owner's buckets, turns its 400 into a
// query error (not retried), gives up with *Unavailable while none answers,
// and sums ?window= from the series it forwards.
func TestReaderForwardsSeriesToTheOwner(t *testing.T) {
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	want := []windows.Bucket{
		{Start: start, Step: time.Minute, Total: 3, Endpoints: map[string]uint64{"GET /a": 3}, Final: true,
			Status: map[string]codecs.StatusCounts{"GET /a": {codecs.Class2xx: 2, codecs.Class4xx: 1}}},
		{Start: start.Add(time.Minute), Step: time.Minute, Total: 1, Endpoints: map[string]uint64{"GET /b": 1}},
	}
	b, _ := json.Marshal(want)
	r := newTestReader(newOwners(allOn(addr(seriesWorker(t, http.StatusOK, string(b))))))
	defer r.Close()
	got, err := r.Series("10.0.0.1", time.Minute, start, start.Add(time.Minute))
	if err != nil || len(got) != 2 || got[0].Total != 3 || !got[0].Final || got[1].Endpoints["GET /b"] != 1 || !got[1].Start.Equal(want[1].Start) ||
		got[0].Status["GET /a"] != want[0].Status["GET /a"] || got[1].Status != nil {
		t.Fatalf("Series = %+v, %v; want %+v", got, err, want)
	}
	r.now = func() time.Time { return start.Add(90 * time.Second) }
	sum, err := r.Range("10.0.0.1", 2*time.Minute)
	if err != nil || sum.Total != 4 || sum.Endpoints["GET /a"] != 3 || sum.Step != time.Minute || !sum.From.Equal(start) ||
		sum.Status["GET /a"] != want[0].Status["GET /a"] {
		t.Errorf("Range = %+v, %v; want 4 calls from %v", sum, err, start)
	}

	bad := newTestReader(newOwners(allOn(addr(seriesWorker(t, http.StatusBadRequest, "step 2m is not kept\n")))))
	defer bad.Close()
	t0 := time.Now()
	_, err = bad.Series("10.0.0.1", time.Minute, start, start)
	var qe *windows.QueryError
	if !errors.As(err, &qe) || qe.Msg != "step 2m is not kept" || time.Since(t0) >= bad.Window {
		t.Errorf("owner's 400: %v after %v, want a QueryError at once", err, time.Since(t0))
	}

	busy := newTestReader(newOwners(allOn(addr(seriesWorker(t, http.StatusServiceUnavailable, "rebalancing")))))
	defer busy.Close()
	var ua *Unavailable
	if _, err := busy.Series("10.0.0.1", time.Minute, start, start); !errors.As(err, &ua) {
		t.Errorf("refusing owner: %v, want *Unavailable", err)
	}
}

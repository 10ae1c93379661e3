package dedupe

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/kafka/kafkatest"
	"github.com/inarious/inarious/internal/testutil"
)

func TestSeenSetRemembersForTheWindow(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	id := func(n int) uint64 { return eventID("c", "shop", fmt.Sprint(n)) }
	s := newSeenSet(24 * time.Hour)
	s.add(t0, []uint64{id(1), id(2)})
	s.add(t0.Add(90*time.Minute), []uint64{id(3)})
	s.add(t0.Add(3*time.Hour), []uint64{id(4), id(3)})
	for n := 1; n <= 4; n++ {
		if !s.has(id(n)) {
			t.Errorf("id %d not remembered", n)
		}
	}
	if s.has(id(5)) || s.ids != 4 { // 3 is held once, in its first slice
		t.Errorf("has(5) = %v, ids = %d", s.has(id(5)), s.ids)
	}
	if early := s.expire(t0.Add(24*time.Hour+59*time.Minute), 0); early != 0 || !s.has(id(1)) {
		t.Fatalf("expired within the window (early %d)", early)
	}
	s.expire(t0.Add(25*time.Hour), 0)
	if s.has(id(1)) || s.has(id(2)) || !s.has(id(3)) || !s.has(id(4)) || s.ids != 2 {
		t.Errorf("after the window: has 1 %v, 2 %v, 3 %v, 4 %v; %d held", s.has(id(1)), s.has(id(2)), s.has(id(3)), s.has(id(4)), s.ids)
	}
	if early := s.expire(t0.Add(25*time.Hour), 1); early != 1 || s.has(id(3)) || !s.has(id(4)) || s.ids != 1 {
		t.Errorf("cap: forgot %d early, %d held", early, s.ids)
	}
}

// The table grows as ids come and shrinks as slices leave, and never
// loses or invents one.
func TestSeenSetGrowsAndShrinks(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	s := newSeenSet(24 * time.Hour)
	const perSlice = 5000
	for sl := range 30 {
		ids := make([]uint64, perSlice)
		for i := range ids {
			ids[i] = eventID("c", "", fmt.Sprint(sl*perSlice+i))
		}
		at := t0.Add(time.Duration(sl) * time.Hour)
		s.add(at, ids)
		s.expire(at, 0)
	}
	// Slices 0-4 ended a window ago: 5 to 29 are held (the window and the
	// slice in progress).
	if s.ids != 25*perSlice {
		t.Fatalf("%d ids held, want %d", s.ids, 25*perSlice)
	}
	for n := 0; n < 30*perSlice; n++ {
		if want := n >= 5*perSlice; s.has(eventID("c", "", fmt.Sprint(n))) != want {
			t.Fatalf("id %d held: %v, want %v", n, !want, want)
		}
	}
	if load := float64(s.ids) / float64(len(s.slots)); load > maxLoad || load < rebuiltLoad*0.9 {
		t.Errorf("load %.2f", load)
	}
}

func TestSeenRecordRoundTrip(t *testing.T) {
	at := time.Unix(1_796_558_400, 123)
	got, ids, err := decodeSeen(encodeSeen(at, []uint64{7, 1 << 63}))
	if err != nil || !got.Equal(at) || len(ids) != 2 || ids[0] != 7 || ids[1] != 1<<63 {
		t.Fatalf("round trip: %v %v %v", got, ids, err)
	}
	if _, _, err := decodeSeen([]byte{1, 2, 3}); err == nil {
		t.Error("a short record decoded")
	}
}

// event is an ingested call of client with id ("" for none).
func event(client, id string) *activitypb.BackendApiActivity {
	return &activitypb.BackendApiActivity{Client: client, HttpMethod: "GET", Route: "/a", RequestId: id, Service: "shop"}
}

// acceptedAt is the time of every ingest record: Users keeps it, as the
// time the API took the event.
var acceptedAt = time.UnixMilli(1_700_000_000_123)

// produceIngest produces evs to the ingest topic keyed by client, noting
// the partition of each id in partitions.
func produceIngest(t *testing.T, cl *kgo.Client, evs []*activitypb.BackendApiActivity, partitions map[string]int32) {
	t.Helper()
	var codec codecs.Activity
	for _, ev := range evs {
		v, err := codec.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		r := &kgo.Record{Topic: string(IngestTopic), Key: []byte(codecs.ClientOf(ev)), Value: v, Timestamp: acceptedAt}
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if ev.GetRequestId() != "" {
			partitions[ev.GetRequestId()] = r.Partition
		}
	}
}

// forwardedIDs reads Users as the usage group does (read_committed): how
// often each id arrived, and whether every event stayed in its partition
// and kept its time.
func forwardedIDs(t *testing.T, cfg kafka.Config, ingestPartition map[string]int32) (map[string]int, int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.ConsumeTopics(string(codecs.ActivityTopic)),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	counts, total := map[string]int{}, 0
	var codec codecs.Activity
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		if fs.NumRecords() == 0 {
			return counts, total
		}
		fs.EachRecord(func(r *kgo.Record) {
			v, err := codec.Decode(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			ev := v.(*activitypb.BackendApiActivity)
			counts[ev.GetRequestId()]++
			total++
			if p, ok := ingestPartition[ev.GetRequestId()]; ok && p != r.Partition {
				t.Errorf("event %s in partition %d of Users, %d of the ingest topic", ev.GetRequestId(), r.Partition, p)
			}
			if !r.Timestamp.Equal(acceptedAt) {
				t.Errorf("event %s at %v in Users, %v in the ingest topic", ev.GetRequestId(), r.Timestamp, acceptedAt)
			}
		})
	}
}

// runStage runs a member until the returned stop is called.
func runStage(t *testing.T, cfg kafka.Config, opts ...Option) (*Stage, func()) {
	t.Helper()
	s := New(append([]Option{WithTransactionalID("test-dedupe")}, opts...)...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, cfg, "", nil) }()
	return s, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("stage: %v", err)
		}
	}
}

// Every id reaches Users once, through copies in one batch, in later
// batches and after the member restarts (its set rebuilt from the seen
// topic); events without an id all pass.
func TestForwardsEachIDOnce(t *testing.T) {
	cfg := kafkatest.Config(t, 3)
	ctx := context.Background()
	s0 := New()
	if err := cfg.EnsureTopics(ctx, s0.Topics()...); err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()

	partitions := map[string]int32{}
	var first []*activitypb.BackendApiActivity
	for i := range 60 {
		ev := event(fmt.Sprintf("c%d", i%7), fmt.Sprintf("id-%d", i))
		first = append(first, ev)
		if i%5 == 0 {
			first = append(first, ev) // a copy in the same batch
		}
	}
	first = append(first, event("c1", ""), event("c1", ""))
	produceIngest(t, prod, first, partitions)
	s, stop := runStage(t, cfg)
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		return s.forwarded.Load() == 62 && s.duplicates.Load() == 12, fmt.Sprintf("forwarded %d, dropped %d", s.forwarded.Load(), s.duplicates.Load())
	})
	produceIngest(t, prod, first[:10], partitions) // a retried batch
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		return s.duplicates.Load() == 22, fmt.Sprintf("dropped %d", s.duplicates.Load())
	})
	stop()

	// Copies arrive while no member runs; the next one restores the ids.
	produceIngest(t, prod, append(first[20:40], event("c2", "id-new")), partitions)
	s, stop = runStage(t, cfg)
	defer stop()
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		return s.forwarded.Load() == 1 && s.restored.Load() >= 60, fmt.Sprintf("forwarded %d, restored %d, dropped %d", s.forwarded.Load(), s.restored.Load(), s.duplicates.Load())
	})
	counts, total := forwardedIDs(t, cfg, partitions)
	if total != 63 || counts[""] != 2 || counts["id-new"] != 1 {
		t.Errorf("Users holds %d events (%d without id, id-new %d), want 63, 2, 1", total, counts[""], counts["id-new"])
	}
	for i := range 60 {
		if n := counts[fmt.Sprintf("id-%d", i)]; n != 1 {
			t.Errorf("id-%d reached Users %d times", i, n)
		}
	}
}

// A poll topped up takes the events that arrived after it, up to the wait,
// and returns what it has when none come.
func TestTopUpTakesLaterEvents(t *testing.T) {
	cfg := kafkatest.Config(t, 1)
	ctx := context.Background()
	if err := cfg.EnsureTopics(ctx, New().Topics()...); err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(cfg.Brokers...), kgo.TransactionalID("topup"), kgo.ConsumerGroup("topup"),
		kgo.ConsumeTopics(string(IngestTopic)), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	produceIngest(t, prod, []*activitypb.BackendApiActivity{event("c", "1"), event("c", "2")}, map[string]int32{})
	first := sess.PollRecords(ctx, maxPoll)
	for first.NumRecords() < 2 {
		first = append(first, sess.PollRecords(ctx, maxPoll)...)
	}
	later := make(chan struct{})
	go func() {
		defer close(later)
		produceIngest(t, prod, []*activitypb.BackendApiActivity{event("c", "3")}, map[string]int32{})
	}()
	if got := topUp(ctx, sess, first, time.Minute).NumRecords(); got != 3 {
		t.Errorf("topped up to %d events, want 3", got)
	}
	<-later
	if got := topUp(ctx, sess, first, 50*time.Millisecond).NumRecords(); got != 2 {
		t.Errorf("with nothing new: %d events, want the 2 polled", got)
	}
}

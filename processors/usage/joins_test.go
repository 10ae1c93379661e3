package usage_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/stream"
	"github.com/inarious/inarious/internal/tablestore"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/processors/usage"
)

// With window joins a member holds the windowed partitions matching its
// own and reads them with ScanWindow: a bucket the group closed comes back
// from the joined topic, and a partition it does not hold is refused.
func TestWindowJoinsHoldClosedBuckets(t *testing.T) {
	gkt := tester.New(t)
	c := &clock{now: t0.Add(time.Hour)}
	u := usage.New(usage.WithWindows(minutes), usage.WithClock(c.Now), usage.WithWindowJoins())
	// goka's Validate takes a topic both as Output and as Join.
	proc, err := goka.NewProcessor(nil, u.Graph(), goka.WithTester(gkt), goka.WithStorageBuilder(u.WrapStorage(gkt.StorageBuilder())))
	if err != nil {
		t.Fatal(err)
	}
	stop := testutil.RunProcessor(t, proc)

	in := string(codecs.ActivityTopic)
	topic := windows.Topic(time.Minute)
	gkt.Consume(in, "c", eventAt("c", "/a", t0.Add(5*time.Second)))
	gkt.Consume(in, "c", eventAt("c", "/a", t0.Add(10*time.Second)))
	gkt.Consume(in, "c", eventAt("c", "/a", t0.Add(3*time.Minute))) // closes 12:00 (grace 1 m)

	start, limit := windows.KeyRange("c", t0.Unix(), t0.Add(time.Hour).Unix())
	scan := func() map[string]uint64 {
		got := map[string]uint64{}
		err := u.ScanWindow(topic, 0, start, limit, func(key string, v []byte) error {
			wc, err := new(codecs.WindowCounts).Decode(v)
			if err != nil {
				return err
			}
			got[key] = wc.(*activitypb.WindowCounts).GetTotal()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		got := scan()
		return len(got) == 1 && got[windows.Key("c", t0.Unix())] == 2, "joined buckets: want 12:00 with 2 calls"
	})
	if err := u.ScanWindow(topic, 1, start, limit, func(string, []byte) error { return nil }); !errors.Is(err, usage.ErrNotJoined) {
		t.Errorf("partition 1 (not held): %v, want ErrNotJoined", err)
	}
	stop()
	if err := u.ScanWindow(topic, 0, start, limit, func(string, []byte) error { return nil }); !errors.Is(err, usage.ErrNotJoined) {
		t.Errorf("after the processor stopped: %v, want ErrNotJoined", err)
	}
}

// A long-running member prunes its joined windowed partitions as the views
// prune theirs: buckets older than the retention and a step go, the rest
// stay.
func TestPruneWindowsDropsExpiredJoinedBuckets(t *testing.T) {
	w := windows.Config{Specs: []windows.Spec{{Step: time.Minute, Retention: time.Hour}}, Grace: time.Minute}
	u := usage.New(usage.WithWindows(w), usage.WithWindowJoins())
	topic := windows.Topic(time.Minute)
	st, err := u.WrapStorage(tablestore.Builder(t.TempDir(), tablestore.DefaultOptions()))(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Open(); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := t0.Add(24 * time.Hour)
	starts := map[string]time.Time{
		"old":      now.Add(-3 * time.Hour),
		"edge-old": now.Add(-time.Hour - 2*time.Minute),
		"edge-new": now.Add(-time.Hour),
		"new":      now.Add(-time.Minute),
	}
	for name, at := range starts {
		for _, c := range []string{"a", "b"} {
			if err := st.Set(windows.Key(c, at.Unix()), []byte(name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	n, err := u.PruneWindows(now)
	if err != nil || n != 4 {
		t.Fatalf("PruneWindows = %d, %v; want the 4 buckets of old and edge-old", n, err)
	}
	for _, c := range []string{"a", "b"} {
		start, limit := windows.KeyRange(c, 0, now.Unix())
		var kept []string
		if err := u.ScanWindow(topic, 0, start, limit, func(_ string, v []byte) error { kept = append(kept, string(v)); return nil }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(kept, []string{"edge-new", "new"}) {
			t.Errorf("client %s keeps %v, want [edge-new new]", c, kept)
		}
	}
	if n, _ := u.PruneWindows(now); n != 0 {
		t.Errorf("a second prune deleted %d", n)
	}
}

// The group places a windowed topic's records by their client, where it
// joins them, and every other record by its whole key.
func TestPartitionKeyPlacesWindowedRecordsByClient(t *testing.T) {
	var u stream.KeyPlacer = usage.New()
	key := []byte(windows.Key("198.51.100.7", t0.Unix()))
	if got := u.PartitionKey(windows.Topic(time.Hour))(key); string(got) != "198.51.100.7" {
		t.Errorf("windowed record placed by %q, want its client", got)
	}
	for _, topic := range []string{string(usage.Table), string(codecs.ActivityTopic), string(usage.LoopTopic)} {
		if u.PartitionKey(topic) != nil {
			t.Errorf("%s: records placed by part of their key, want the whole key", topic)
		}
	}
}

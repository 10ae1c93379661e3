package windows_test

import (
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/windows"
)

// sortedKeys is a store's keys as windows.Keys, counting the keys it reads.
type sortedKeys struct {
	keys []string
	i    int
	read int
}

func (s *sortedKeys) Next() bool  { s.i++; s.read++; return s.i < len(s.keys) }
func (s *sortedKeys) Key() string { return s.keys[s.i] }
func (s *sortedKeys) Err() error  { return nil }
func (s *sortedKeys) Seek(key string) bool {
	s.i = sort.SearchStrings(s.keys, key)
	s.read++
	return s.i < len(s.keys)
}

// Prune deletes every client's buckets before the cutoff, also of clients
// whose names sort among other clients' keys, leaves other keys alone, and
// skips each client's young keys instead of reading them.
func TestPruneDeletesOldBucketsOfEveryClient(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var keys []string
	for _, c := range []string{"a", "a\x00b", "b", "c"} {
		for m := range 60 {
			keys = append(keys, windows.Key(c, t0.Add(time.Duration(m)*time.Minute).Unix()))
		}
	}
	keys = append(keys, "not a windowed key")
	slices.Sort(keys)
	store := &sortedKeys{keys: keys, i: -1}
	cutoff := t0.Add(2 * time.Minute).Unix()
	var gone []string
	n, err := windows.Prune(store, cutoff, func(key string) (bool, error) {
		gone = append(gone, key)
		return key != windows.Key("c", t0.Unix()), nil // not c's 12:00 to delete
	})
	if err != nil || n != 7 {
		t.Errorf("Prune = %d, %v; want 7 (8 old buckets, one not the store's)", n, err)
	}
	for _, k := range gone {
		if _, start, _ := windows.ParseKey(k); start >= cutoff {
			t.Errorf("deleted %q, which is young", k)
		}
	}
	if len(gone) != 8 {
		t.Errorf("asked to delete %d keys, want 8", len(gone))
	}
	if store.read > 20 {
		t.Errorf("read %d of %d keys: it should seek past young ones", store.read, len(keys))
	}
}

// The schedule: 48 times per retention, between a minute and a day; one
// pruner of many granularities runs at the pace of the shortest.
func TestPruneEvery(t *testing.T) {
	for _, c := range []struct {
		retention, want time.Duration
	}{{48 * time.Hour, time.Hour}, {30 * time.Minute, time.Minute}, {17520 * time.Hour, 24 * time.Hour}} {
		if got := (windows.Spec{Step: time.Minute, Retention: c.retention}).PruneEvery(); got != c.want {
			t.Errorf("retention %s: every %s, want %s", c.retention, got, c.want)
		}
	}
	if got := windows.Default().PruneEvery(); got != time.Hour {
		t.Errorf("default windows: every %s, want 1h (48 h of minutes)", got)
	}
	if got := (windows.Config{}).PruneEvery(); got != 24*time.Hour {
		t.Errorf("no windows: every %s, want a day", got)
	}
}

package dedupe

import (
	"slices"
	"time"
)

// seenSet holds the ids one partition's events were first seen with during
// the dedupe window, as 64-bit hashes in time slices (a twenty-fourth of
// the window each): the current slice is a map, older ones are sorted
// arrays, 8 bytes per id. A slice leaves once all of it is older than the
// window, so an id is remembered for at least the window.
type seenSet struct {
	window, slice time.Duration
	current       map[uint64]struct{}
	currentStart  time.Time
	sealed        []sealedSlice
	ids           int
}

type sealedSlice struct {
	start time.Time
	ids   []uint64 // sorted
}

// slicesPerWindow is how finely the window is cut: an id stays at most a
// slice longer than the window.
const slicesPerWindow = 24

func newSeenSet(window time.Duration) *seenSet {
	return &seenSet{window: window, slice: max(window/slicesPerWindow, time.Millisecond), current: map[uint64]struct{}{}}
}

// has reports whether id was seen within the window.
func (s *seenSet) has(id uint64) bool {
	if _, ok := s.current[id]; ok {
		return true
	}
	for i := len(s.sealed) - 1; i >= 0; i-- {
		if _, ok := slices.BinarySearch(s.sealed[i].ids, id); ok {
			return true
		}
	}
	return false
}

// add records ids as first seen at at. Times come from the flushes that
// wrote them, in order but for clock skew between members: an id seen
// "before" the current slice joins it, which only keeps it longer.
func (s *seenSet) add(at time.Time, ids []uint64) {
	if s.currentStart.IsZero() {
		s.currentStart = at.Truncate(s.slice)
	}
	if !at.Before(s.currentStart.Add(s.slice)) {
		s.seal()
		s.currentStart = at.Truncate(s.slice)
	}
	for _, id := range ids {
		if _, ok := s.current[id]; !ok {
			s.current[id] = struct{}{}
			s.ids++
		}
	}
}

// seal turns the current slice into a sorted one.
func (s *seenSet) seal() {
	if len(s.current) == 0 {
		return
	}
	ids := make([]uint64, 0, len(s.current))
	for id := range s.current {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	s.sealed = append(s.sealed, sealedSlice{start: s.currentStart, ids: ids})
	s.current = map[uint64]struct{}{}
}

// expire forgets the slices that ended a window before now, and then the
// oldest ones while more than maxIDs are held (0: no cap); it returns how
// many ids the cap made it forget early.
func (s *seenSet) expire(now time.Time, maxIDs int) (early int) {
	cut := 0
	for cut < len(s.sealed) && !s.sealed[cut].start.Add(s.slice+s.window).After(now) {
		s.ids -= len(s.sealed[cut].ids)
		cut++
	}
	for maxIDs > 0 && s.ids > maxIDs && cut < len(s.sealed) {
		early += len(s.sealed[cut].ids)
		s.ids -= len(s.sealed[cut].ids)
		cut++
	}
	if cut > 0 {
		s.sealed = slices.Delete(s.sealed, 0, cut)
	}
	return early
}

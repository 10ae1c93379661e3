package dedupe

import (
	"math/bits"
	"slices"
	"time"
)

// seenSet holds the ids one partition's events were first seen with during
// the dedupe window, as 64-bit hashes in one open-addressing table: a
// lookup costs one probe sequence, usually one cache miss, however many
// ids are held. The window is cut in slices (a twenty-fourth of it each);
// each id carries its slice's tag in its low 8 bits, and a slice leaves,
// the table rebuilt without it, once all of it is older than the window,
// so an id is remembered for at least the window. 8 bytes per slot, 47 to
// 70 % of slots used (the table grows by half): 11 to 17 bytes per id.
type seenSet struct {
	window, slice time.Duration
	slots         []uint64 // 0: empty; else the id's upper 56 bits | its slice's tag
	live          []liveSlice
	nextTag       uint64
	ids           int
}

// liveSlice is one slice of the window held: when it starts, its tag, and
// how many ids it holds.
type liveSlice struct {
	start time.Time
	tag   uint64
	ids   int
}

const (
	// slicesPerWindow is how finely the window is cut: an id stays at most
	// a slice longer than the window.
	slicesPerWindow = 24
	tagMask         = 0xff
	// maxLoad is the share of slots used before the table grows by half;
	// a rebuilt table starts at rebuiltLoad.
	maxLoad     = 0.7
	rebuiltLoad = 0.5
	minSlots    = 1 << 10
)

func newSeenSet(window time.Duration) *seenSet {
	s := &seenSet{window: window, slice: max(window/slicesPerWindow, time.Millisecond), nextTag: 1}
	s.slots = make([]uint64, minSlots)
	return s
}

// home is where the probe sequence of an id's key (its upper 56 bits)
// starts, mapped onto a table of any size by multiplying (Lemire's fast
// range) after a Fibonacci mix.
func (s *seenSet) home(key uint64) int {
	hi, _ := bits.Mul64(key*0x9e3779b97f4a7c15, uint64(len(s.slots)))
	return int(hi)
}

// has reports whether id was seen within the window.
func (s *seenSet) has(id uint64) bool {
	key := id &^ tagMask
	for i := s.home(key); ; i = s.next(i) {
		v := s.slots[i]
		if v == 0 {
			return false
		}
		if v&^tagMask == key {
			return true
		}
	}
}

// next is the slot after i, linear probing.
func (s *seenSet) next(i int) int {
	if i++; i == len(s.slots) {
		return 0
	}
	return i
}

// insert puts id with tag; it reports false when id was there already.
func (s *seenSet) insert(id, tag uint64) bool {
	key := id &^ tagMask
	for i := s.home(key); ; i = s.next(i) {
		v := s.slots[i]
		if v == 0 {
			s.slots[i] = key | tag
			return true
		}
		if v&^tagMask == key {
			return false
		}
	}
}

// add records ids as first seen at at. Times come from the flushes that
// wrote them, in order but for clock skew between members: an id seen
// "before" the newest slice joins it, which only keeps it longer.
func (s *seenSet) add(at time.Time, ids []uint64) {
	if n := len(s.live); n == 0 || !at.Before(s.live[n-1].start.Add(s.slice)) {
		s.live = append(s.live, liveSlice{start: at.Truncate(s.slice), tag: s.nextTag})
		s.nextTag = s.nextTag%tagMask + 1 // 1..255: 0 marks an empty slot
	}
	cur := &s.live[len(s.live)-1]
	for _, id := range ids {
		if float64(s.ids+1) > maxLoad*float64(len(s.slots)) {
			s.rebuild(len(s.slots)+len(s.slots)/2, nil)
		}
		if s.insert(id, cur.tag) {
			s.ids++
			cur.ids++
		}
	}
}

// rebuild moves the ids into a table of slots slots, leaving out those of
// the slices in drop.
func (s *seenSet) rebuild(slots int, drop map[uint64]bool) {
	old := s.slots
	s.slots = make([]uint64, slots)
	for _, v := range old {
		if v != 0 && !drop[v&tagMask] {
			s.insert(v, v&tagMask)
		}
	}
}

// expire forgets the slices that ended a window before now, and then the
// oldest ones while more than maxIDs are held (0: no cap); it returns how
// many ids the cap made it forget early.
func (s *seenSet) expire(now time.Time, maxIDs int) (early int) {
	cut, held := 0, s.ids
	for cut < len(s.live) && !s.live[cut].start.Add(s.slice+s.window).After(now) {
		held -= s.live[cut].ids
		cut++
	}
	for maxIDs > 0 && held > maxIDs && cut < len(s.live) {
		early += s.live[cut].ids
		held -= s.live[cut].ids
		cut++
	}
	if cut == 0 {
		return 0
	}
	drop := make(map[uint64]bool, cut)
	for _, l := range s.live[:cut] {
		drop[l.tag] = true
	}
	s.live = slices.Delete(s.live, 0, cut)
	s.ids = held
	s.rebuild(max(int(float64(held)/rebuiltLoad), minSlots), drop)
	return early
}

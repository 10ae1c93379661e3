package tablestore_test

import (
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/inarious/inarious/internal/tablestore"
	"github.com/inarious/inarious/internal/testutil"
)

func open(t *testing.T, path string, opts tablestore.Options) *tablestore.Store {
	t.Helper()
	s, err := tablestore.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	return s
}

func mustGet(t *testing.T, s *tablestore.Store, key string) string {
	t.Helper()
	v, err := s.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(v)
}

// A long interval keeps writes pending, so reads must see them unwritten.
var slow = tablestore.Options{FlushInterval: time.Hour, MaxPending: 1000}

func TestReadsSeePendingWrites(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "p0"), slow)
	defer s.Close()
	_ = s.Set("a", []byte("1"))
	_ = s.Set("a", []byte("2"))
	_ = s.Set("b", []byte("x"))
	_ = s.Delete("b")
	if got := mustGet(t, s, "a"); got != "2" {
		t.Errorf("a = %q, want the newest pending value 2", got)
	}
	if has, _ := s.Has("b"); has || mustGet(t, s, "b") != "" {
		t.Error("deleted key still visible")
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, "a"); got != "2" {
		t.Errorf("after flush a = %q", got)
	}
}

func TestCloseWritesValuesWithTheirOffset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p0")
	s := open(t, path, slow)
	for i := 0; i < 10; i++ {
		_ = s.Set(fmt.Sprintf("k%d", i), []byte(fmt.Sprint(i)))
	}
	_ = s.SetOffset(41)
	if o, _ := s.GetOffset(-1); o != 41 {
		t.Errorf("pending offset = %d", o)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path, slow)
	defer s.Close()
	if o, _ := s.GetOffset(-1); o != 41 {
		t.Errorf("offset after reopen = %d, want 41", o)
	}
	for i := 0; i < 10; i++ {
		if got := mustGet(t, s, fmt.Sprintf("k%d", i)); got != fmt.Sprint(i) {
			t.Errorf("k%d = %q after reopen", i, got)
		}
	}
}

func TestUnflushedWritesAndOffsetAreLostTogether(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p0")
	s := open(t, path, slow)
	_ = s.Set("old", []byte("v"))
	_ = s.SetOffset(5)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	_ = s.Set("new", []byte("v"))
	_ = s.SetOffset(6)
	// A crash: the process ends without Close. Open a second handle on a
	// copy is not possible with LevelDB's lock, so read what is on disk by
	// checking the offset LevelDB holds before the next flush.
	if o, _ := s.GetOffset(-1); o != 6 {
		t.Fatalf("pending offset %d", o)
	}
	_ = s.Close()
	s = open(t, path, slow)
	defer s.Close()
	if o, _ := s.GetOffset(-1); o != 6 || mustGet(t, s, "new") != "v" {
		t.Errorf("offset %d, new=%q: close must write both", o, mustGet(t, s, "new"))
	}
}

func TestMaxPendingFlushesEarlyAndIntervalFlushes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p0")
	s := open(t, path, tablestore.Options{FlushInterval: 5 * time.Millisecond, MaxPending: 3})
	defer s.Close()
	for i := 0; i < 7; i++ {
		if err := s.Set(fmt.Sprintf("k%d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.SetOffset(9)
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		it, err := s.Iterator()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for it.Next() {
			n++
		}
		it.Release()
		return n == 7, fmt.Sprintf("iterator sees %d of 7 keys", n)
	})
}

func TestIteratorHidesOffsetAndHonoursRange(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "p0"), slow)
	defer s.Close()
	for _, k := range []string{"a1", "a2", "b1", "c1"} {
		_ = s.Set(k, []byte(k))
	}
	_ = s.SetOffset(3)
	keys := func(start, limit string) []string {
		it, err := s.IteratorWithRange([]byte(start), []byte(limit))
		if err != nil {
			t.Fatal(err)
		}
		defer it.Release()
		var out []string
		for it.Next() {
			out = append(out, string(it.Key()))
		}
		return out
	}
	cases := []struct {
		start, limit string
		want         string
	}{
		{"", "", "[a1 a2 b1 c1]"},
		{"a", "", "[a1 a2]"},
		{"a2", "c1", "[a2 b1]"},
	}
	for _, c := range cases {
		if got := fmt.Sprint(keys(c.start, c.limit)); got != c.want {
			t.Errorf("range %q..%q = %s, want %s", c.start, c.limit, got, c.want)
		}
	}
}

func BenchmarkSet(b *testing.B) {
	s, err := tablestore.Open(filepath.Join(b.TempDir(), "p0"), tablestore.DefaultOptions())
	if err != nil {
		b.Fatal(err)
	}
	_ = s.Open()
	defer s.Close()
	v := make([]byte, 120)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = s.Set(fmt.Sprintf("10.0.%d.%d", i>>8&0xff, i&0xff), v)
		_ = s.SetOffset(int64(i))
	}
}

// Close must not return while the flusher is inside a tick: that tick's
// batch would go to a closed database. The tick is held in a hook, and
// synctest.Wait lets every goroutine run until it blocks, so no timing is
// involved: a Close that does not wait has returned by then.
func TestCloseWaitsForTheFlusher(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := tablestore.Open(filepath.Join(t.TempDir(), "p0"), tablestore.Options{FlushInterval: time.Millisecond, MaxPending: 1000})
		if err != nil {
			t.Fatal(err)
		}
		inTick, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		s.SetTickHook(func() {
			once.Do(func() {
				close(inTick)
				<-release
			})
		})
		if err := s.Open(); err != nil {
			t.Fatal(err)
		}
		if err := s.Set("k0", []byte("v")); err != nil { // the flusher ticks only with something pending
			t.Fatal(err)
		}
		<-inTick // the flusher is mid-tick
		if err := s.Set("k", []byte("v")); err != nil {
			t.Fatal(err)
		}

		closed := make(chan error, 1)
		go func() { closed <- s.Close() }()
		synctest.Wait()
		select {
		case err := <-closed:
			t.Errorf("Close returned (%v) while the flusher was mid-tick", err)
			close(release)
		default:
			close(release)
			if err := <-closed; err != nil {
				t.Errorf("Close: %v", err)
			}
		}
		// goleveldb's mpoolDrain exits up to a second after Close; in the
		// bubble that second is fake and passes at once.
		time.Sleep(time.Second)
	})
}

// Concurrent Close calls all return once the store is closed, none panics.
func TestConcurrentClose(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "p0"), tablestore.Options{FlushInterval: time.Microsecond, MaxPending: 1000})
	_ = s.Set("k", []byte("v"))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	wg.Wait()
}

func TestCloseWithoutOpenAndOpenAfterClose(t *testing.T) {
	s, err := tablestore.Open(filepath.Join(t.TempDir(), "p0"), slow)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil { // no flusher to wait for
		t.Fatal(err)
	}
	if err := s.Open(); err == nil {
		t.Error("Open after Close started a flusher on a closed database")
	}
}

// An idle store's flusher sleeps: no tick until something is pending, one
// flush interval after it became pending, and none after that flush.
func TestFlusherSleepsWhileNothingIsPending(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := tablestore.Open(filepath.Join(t.TempDir(), "p0"), tablestore.Options{FlushInterval: 200 * time.Millisecond, MaxPending: 1000})
		if err != nil {
			t.Fatal(err)
		}
		var ticks atomic.Int32
		s.SetTickHook(func() { ticks.Add(1) })
		if err := s.Open(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour)
		if n := ticks.Load(); n != 0 {
			t.Fatalf("%d ticks in an idle hour, want 0", n)
		}
		_ = s.SetOffset(1)
		time.Sleep(199 * time.Millisecond)
		_ = s.Set("k", []byte("v")) // pending already: no second timer
		synctest.Wait()
		if n := ticks.Load(); n != 0 {
			t.Fatalf("%d ticks before the interval ended", n)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if n := ticks.Load(); n != 1 {
			t.Fatalf("%d ticks one interval after the first write, want 1", n)
		}
		if o, _ := s.GetOffset(-1); o != 1 {
			t.Fatalf("offset %d after the flush, want 1", o)
		}
		time.Sleep(time.Hour)
		if n := ticks.Load(); n != 1 {
			t.Fatalf("%d ticks after an idle hour, want still 1", n)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // goleveldb's mpoolDrain, as above
	})
}

// A batch that cannot be written (a full disk) stays visible: reads answer
// its values, not LevelDB's older ones, and the store reports the error
// from then on, so its owner stops instead of counting on.
func TestFailedWriteKeepsValuesVisible(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "p0"), slow)
	defer s.Close()
	_ = s.Set("a", []byte("1"))
	_ = s.SetOffset(10)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	_ = s.Set("a", []byte("2"))
	_ = s.Set("b", []byte("x"))
	_ = s.SetOffset(12)
	if err := s.FailWrites(); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err == nil {
		t.Fatal("flush succeeded with writes failing")
	}
	if a, b := mustGet(t, s, "a"), mustGet(t, s, "b"); a != "2" || b != "x" {
		t.Errorf("after the failed write a = %q, b = %q; want the unwritten 2 and x, not older values", a, b)
	}
	if off, err := s.GetOffset(-1); err != nil || off != 12 {
		t.Errorf("offset %d (%v), want the unwritten 12", off, err)
	}
	if err := s.Set("c", []byte("y")); err == nil {
		t.Error("Set after a failed write did not report it")
	}
}

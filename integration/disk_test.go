package integration

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/testutil"
)

// smallFS is a size-limited tmpfs mounted for one test: a disk that fills.
type smallFS struct {
	dir    string
	filler string
}

// mountSmallFS mounts a tmpfs of size bytes at dir, unmounted when the test
// ends (after the processes using it stopped: cleanups run last first). It
// skips t where mounting is not allowed (not root, no CAP_SYS_ADMIN).
func mountSmallFS(t *testing.T, dir string, size int64) *smallFS {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a size-limited tmpfs at %s (needs root with CAP_SYS_ADMIN): %v %s", dir, err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return &smallFS{dir: dir, filler: filepath.Join(dir, "filler")}
}

// fill writes a file until the filesystem has no space left, and returns
// its size.
func (fs *smallFS) fill(t *testing.T) int64 {
	t.Helper()
	f, err := os.OpenFile(fs.filler, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	var n int64
	for {
		k, err := f.Write(chunk)
		n += int64(k)
		if errors.Is(err, syscall.ENOSPC) {
			return n
		}
		if err != nil {
			t.Fatalf("filling %s: %v", fs.dir, err)
		}
	}
}

// free removes what fill wrote.
func (fs *smallFS) free(t *testing.T) {
	t.Helper()
	if err := os.Remove(fs.filler); err != nil {
		t.Fatal(err)
	}
}

var storageFullRe = regexp.MustCompile(`level=ERROR msg="local storage full[^"]*".*`)

// Scenario: the disk under a worker's data directory fills up while it
// counts and serves routed reads. The worker says so loudly (an ERROR
// line naming the full storage, not one per event), serves nothing wrong
// while its storage cannot be written (every read through the API is a
// count the requests allow, or 503), and once space is back it counts
// again with nothing lost: counts exact all-time, in the minute buckets
// and in the endpoints table, also after a restart on the same storage
// (its tables are not corrupted).
func TestWorkerDiskFull(t *testing.T) {
	needKafka(t)
	dir := t.TempDir()
	wdir := filepath.Join(dir, "w1")
	fs := mountSmallFS(t, wdir, 64<<20)
	resetKafka(t)
	tr := newTraffic(t, 20)
	gw := newGroupWatcher(t)
	w := startWorker(t, "worker-1", wdir, "--query-listen", "127.0.0.1:0")
	a := startAPI(t, filepath.Join(dir, "api"), "--usage-source", "workers")
	gw.waitSoleOwner(w.started, "worker-1")
	tr.waitReady(a, 60*time.Second)

	l, rd := tr.underLoad(a, 2, "traffic before the disk fills")
	tr.waitCountsOf(a, tr.snapshot(), true, 60*time.Second)

	tFull := time.Now()
	filled := fs.fill(t)
	line := w.waitLog(storageFullRe, 60*time.Second)
	noticed := time.Since(tFull)
	t.Logf("disk full (%d bytes of filler); after %v the worker logged: %s", filled, noticed, line)
	// Full for a while under traffic: the worker retries its storage (and
	// the API says it is degraded) until space comes back.
	const fullAtLeast = 20 * time.Second
	var degraded []string
	testutil.EventuallyEvery(t, fullAtLeast+30*time.Second, 500*time.Millisecond, func() (bool, string) {
		if _, rdz, err := tr.readyz(a); err == nil && !rdz.Ready && degraded == nil {
			degraded = rdz.Degraded
		}
		return time.Since(tFull) >= fullAtLeast && l.sent.Load() > 0, "disk full for less than " + fullAtLeast.String()
	})
	if !w.running() {
		t.Logf("the worker exited with its disk full: %v", w.exitErr())
	}
	t.Logf("/readyz with the worker's disk full: degraded=%q", degraded)
	fullFor := time.Since(tFull)

	tFree := time.Now()
	fs.free(t)
	if !w.running() { // it stopped: started again on the same storage
		w = startWorker(t, "worker-1", wdir, "--query-listen", "127.0.0.1:0")
	}
	l.waitSent(t, 60*time.Second, l.sent.Load()+500, "traffic after space came back")
	sent := l.halt(t)
	exact, windowsExact, endpointsExact := tr.waitAllExact(a, 120*time.Second)
	caughtUp := time.Since(tFree)
	reads := rd.halt()
	for _, s := range reads.wrong {
		t.Errorf("wrong read: %s", s)
	}
	fullLines := len(storageFullRe.FindAllString(w.log(), -1))

	// Its tables survived: restarted on the same storage, it counts on
	// from there, exactly.
	if _, ok := w.stop(15 * time.Second); !ok {
		t.Fatal("the worker did not stop on SIGTERM")
	}
	w = startWorker(t, "worker-1", wdir, "--query-listen", "127.0.0.1:0")
	gw.waitSoleOwner(w.started, "worker-1")
	tr.burst(a, 200, 8)
	restarted := tr.waitCounts(a, 60*time.Second)
	acked, counted, dups, missing := tr.tally(a)
	if dups != 0 || missing != 0 || acked != counted {
		t.Errorf("acknowledged %d, counted %d: %d duplicates, %d missing", acked, counted, dups, missing)
	}
	report(t, "filler_bytes=%d full_logged_after=%s full_for=%s storage_full_error_lines=%d background_requests=%d acknowledged=%d counted=%d duplicates=%d missing=%d reads=%d reads_200=%d reads_503=%d reads_404=%d wrong_reads=%d counts_exact_after_space_back=%s window_sums_exact_after=%s endpoints_exact_after=%s caught_up_after_space_back=%s exact_after_restart_on_same_storage=%s",
		filled, ms(noticed), ms(fullFor), fullLines, sent, acked, counted, dups, missing, reads.n, reads.ok, reads.unavailable, reads.notCounted, len(reads.wrong),
		ms(exact), ms(windowsExact), ms(endpointsExact), ms(caughtUp), ms(restarted))
}

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/testutil"
)

// proc is one running inarious process (api or worker) whose stderr (the
// slog output) goes to a file under the test's temp dir.
type proc struct {
	t       *testing.T
	name    string
	args    []string
	logPath string
	cmd     *exec.Cmd
	started time.Time

	done    chan struct{}
	mu      sync.Mutex
	waitErr error
}

var logSeq struct {
	sync.Mutex
	n map[string]int
}

// startProc runs the binary with args; name labels the log file. The process
// is stopped (SIGTERM, then SIGKILL) when the test ends, and the tail of its
// log is printed when the test failed.
func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	logSeq.Lock()
	if logSeq.n == nil {
		logSeq.n = map[string]int{}
	}
	logSeq.n[t.Name()+name]++
	seq := logSeq.n[t.Name()+name]
	logSeq.Unlock()
	logPath := filepath.Join(logDir(t), fmt.Sprintf("%s.%d.log", name, seq))
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binPath, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// No INARIOUS_* from the test's environment except what we pass: the
	// flags below are the whole configuration.
	cmd.Env = cleanEnv()
	p := &proc{t: t, name: name, args: args, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.running() {
			p.stop(15 * time.Second)
		}
		if t.Failed() {
			p.dumpTail(60)
		}
	})
	return p
}

var logDirs sync.Map // test name -> dir

// logDir is one directory of process logs per test: in t.TempDir(), or kept
// under $INARIOUS_LOG_DIR/<run>/<test> when that is set.
func logDir(t *testing.T) string {
	if d, ok := logDirs.Load(t.Name()); ok {
		return d.(string)
	}
	d := t.TempDir()
	if keep := os.Getenv(envLogDir); keep != "" {
		d = filepath.Join(keep, runID, t.Name())
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	logDirs.Store(t.Name(), d)
	return d
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "INARIOUS_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exitErr is the process' exit error once it ended.
func (p *proc) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// stop sends SIGTERM and waits up to timeout, then SIGKILLs. It returns how
// long the process took to exit after SIGTERM and whether it exited by itself.
func (p *proc) stop(timeout time.Duration) (time.Duration, bool) {
	if !p.running() {
		return 0, true
	}
	t0 := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGCONT) // a paused process handles no SIGTERM
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return time.Since(t0), true
	case <-time.After(timeout):
		p.t.Logf("%s (pid %d) did not exit %v after SIGTERM; SIGKILL", p.name, p.pid(), timeout)
		p.kill()
		return time.Since(t0), false
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Errorf("%s (pid %d) survived SIGKILL for 10s", p.name, p.pid())
	}
}

// pause stops the process with SIGSTOP: it keeps its sockets, and runs on
// from where it was after resume, as a paused VM would.
func (p *proc) pause() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		p.t.Fatalf("SIGSTOP %s: %v", p.name, err)
	}
}

// resume continues a paused process with SIGCONT.
func (p *proc) resume() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		p.t.Fatalf("SIGCONT %s: %v", p.name, err)
	}
}

func (p *proc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

func (p *proc) dumpTail(n int) {
	lines := strings.Split(strings.TrimRight(p.log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	p.t.Logf("---- last %d lines of %s (%s) ----\n%s", len(lines), p.name, p.logPath, strings.Join(lines, "\n"))
}

// waitLog polls the log until re matches, and returns the first submatch (or
// the whole match). It fails when the process exits or timeout passes.
func (p *proc) waitLog(re *regexp.Regexp, timeout time.Duration) string {
	p.t.Helper()
	var m []string
	defer func() {
		if m == nil { // failed: show why
			p.dumpTail(40)
		}
	}()
	testutil.EventuallyEvery(p.t, timeout, 20*time.Millisecond, func() (bool, string) {
		if m = re.FindStringSubmatch(p.log()); m != nil {
			return true, ""
		}
		if !p.running() {
			p.t.Fatalf("%s exited (%v) before logging %q", p.name, p.exitErr(), re)
		}
		return false, fmt.Sprintf("%s did not log %q", p.name, re)
	})
	if len(m) > 1 {
		return m[1]
	}
	return m[0]
}

// commonArgs are the flags every process of the suite gets.
func commonArgs(dataDir string) []string {
	return []string{
		"--brokers", strings.Join(brokers, ","),
		"--partitions", fmt.Sprint(partitions),
		"--data-dir", dataDir,
		"--log-level", "info",
	}
}

// partitions of Users and usage-table in the suite: more than one worker's
// worth, so scale-out is visible.
const partitions = 6

// apiProc is an `inarious api` process and where it listens.
type apiProc struct {
	*proc
	base string
}

var apiAddrRe = regexp.MustCompile(`msg="api listening" addr=(\S+)`)

// startAPI runs `inarious api` on a free port and waits until it listens.
func startAPI(t *testing.T, dataDir string, extra ...string) *apiProc {
	t.Helper()
	args := append([]string{"api"}, commonArgs(dataDir)...)
	args = append(args, "--listen", "127.0.0.1:0", "--trusted-proxies", "127.0.0.1", "--client-id", "inarious-api")
	args = append(args, extra...)
	p := startProc(t, "api", args...)
	addr := p.waitLog(apiAddrRe, 60*time.Second)
	return &apiProc{proc: p, base: "http://" + addr}
}

// startWorker runs `inarious worker` with Kafka client id name, so its group
// membership can be told apart.
func startWorker(t *testing.T, name, dataDir string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"worker"}, commonArgs(dataDir)...)
	args = append(args, "--client-id", name)
	args = append(args, extra...)
	return startProc(t, name, args...)
}

var (
	workerStoppedRe = regexp.MustCompile(`msg="usage group stopped" group=usage processed=(\d+) replays_skipped=(\d+) dead_lettered=(\d+)`)
	apiStoppedRe    = regexp.MustCompile(`msg="api stopped" events_accepted=(\d+) delivered=(\d+) failed=(\d+) dropped=(\d+)`)
)

// workerStats parses the worker's "usage group stopped" line (after a graceful stop).
func workerStats(p *proc) (processed, replays, deadLettered uint64, ok bool) {
	all := workerStoppedRe.FindAllStringSubmatch(p.log(), -1)
	if len(all) == 0 {
		return 0, 0, 0, false
	}
	m := all[len(all)-1]
	return atou(m[1]), atou(m[2]), atou(m[3]), true
}

func atou(s string) uint64 {
	var n uint64
	if _, err := fmt.Sscan(s, &n); err != nil {
		panic(fmt.Sprintf("atou(%q): %v", s, err))
	}
	return n
}

package integration

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Environment the suite reads.
const (
	envBrokers = "INARIOUS_KAFKA_BROKERS" // switches the suite on
	envResults = "INARIOUS_RESULTS_FILE"  // optional: measured figures are appended here
	envLogDir  = "INARIOUS_LOG_DIR"       // optional: process logs are kept here
)

var (
	brokers  []string // from INARIOUS_KAFKA_BROKERS
	binPath  string   // the inarious binary TestMain builds
	repoRoot string   // directory of go.mod
	runID    = time.Now().UTC().Format("20060102T150405Z")
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	list := os.Getenv(envBrokers)
	if list == "" {
		list = os.Getenv(envCluster) // the cluster scenario alone needs no second variable
	}
	if list != "" {
		for _, b := range strings.Split(list, ",") {
			if b = strings.TrimSpace(b); b != "" {
				brokers = append(brokers, b)
			}
		}
	}
	if len(brokers) == 0 {
		fmt.Fprintf(os.Stderr, "integration: %s is not set; the real-Kafka suite is skipped "+
			"(start a broker with scripts/kafka.sh start, see integration/README.md)\n", envBrokers)
		return m.Run() // every test skips through needKafka
	}
	root, err := findRepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	repoRoot = root
	dir, err := os.MkdirTemp("", "inarious-integration-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "inarious")
	t0 := time.Now()
	build := exec.Command("go", "build", "-o", binPath, "./cmd/inarious")
	build.Dir = repoRoot
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "integration: building cmd/inarious:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "integration: built %s in %v; brokers %v\n", binPath, time.Since(t0).Round(time.Millisecond), brokers)
	return m.Run()
}

// needKafka skips t when the suite is switched off.
func needKafka(t *testing.T) {
	t.Helper()
	if len(brokers) == 0 {
		t.Skipf("%s is not set: no real Kafka broker to test against", envBrokers)
	}
}

// findRepoRoot walks up from the working directory to go.mod.
func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

var resultsMu sync.Mutex

// report logs a measured figure and appends it to INARIOUS_RESULTS_FILE, if
// set, as one line: run id, test, name=value pairs.
func report(t *testing.T, format string, args ...any) {
	t.Helper()
	line := fmt.Sprintf(format, args...)
	t.Logf("RESULT %s", line)
	path := os.Getenv(envResults)
	if path == "" {
		return
	}
	resultsMu.Lock()
	defer resultsMu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("results file: %v", err)
		return
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "%s\t%s\t%s\n", runID, t.Name(), line)
	if err := w.Flush(); err != nil {
		t.Errorf("results file: %v", err)
	}
}

// ms formats a duration as milliseconds for results lines.
func ms(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }

package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/inarious/inarious/internal/bench/procbench"
	"github.com/inarious/inarious/processors/usage"
)

// memory runs a real `inarious worker` process and reports its resident
// memory as the number of clients in its table grows.
func memory(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("memory", flag.ContinueOnError)
	var c commonFlags
	c.register(fs)
	bin := fs.String("inarious", "", "path of the inarious binary (go build -o /tmp/inarious ./cmd/inarious)")
	steps := fs.String("steps", "10000,100000,1000000", "table sizes (clients) to measure at")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bin == "" {
		return fmt.Errorf("--inarious is required")
	}
	b, cfg, dir, cleanup, err := c.setup()
	if err != nil {
		return err
	}
	defer b.close()
	defer cleanup()
	brokers, err := b.fresh(ctx)
	if err != nil {
		return err
	}
	cfg.Brokers = brokers
	if err := cfg.EnsureTopics(ctx, usage.Topics()...); err != nil {
		return err
	}
	metricsAddr, err := freeAddr()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, *bin, "worker", "--brokers", strings.Join(brokers, ","),
		"--partitions", strconv.Itoa(c.partitions), "--data-dir", filepath.Join(dir, "worker"), "--log-level", "warn",
		"--metrics-listen", metricsAddr)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	fmt.Printf("memory: worker pid %d, broker=%s\n", cmd.Process.Pid, orEmbedded(c.brokers))
	done := 0
	for _, s := range strings.Split(*steps, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= done {
			return fmt.Errorf("bad step %q", s)
		}
		// New clients only, one event each: the table grows to n.
		if err := procbench.PrefillRange(ctx, brokers, done, n); err != nil {
			return err
		}
		done = n
		start := time.Now()
		for {
			lag, err := procbench.GroupLag(brokers, b.version)
			if err == nil && lag == 0 {
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
		rss, err := rssKiB(cmd.Process.Pid)
		if err != nil {
			return err
		}
		live, err := liveHeap(metricsAddr)
		if err != nil {
			return err
		}
		fmt.Printf("clients %8d  caught up in %6.1f s  worker RSS %7.1f MiB  live heap %6.1f MiB\n",
			n, time.Since(start).Seconds(), float64(rss)/1024, live/(1<<20))
	}
	return nil
}

func rssKiB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// liveHeap reads go_gc_heap_live_bytes, the heap that survived the last GC,
// from the worker's /metrics.
func liveHeap(addr string) (float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "go_gc_heap_live_bytes "); ok {
			return strconv.ParseFloat(rest, 64)
		}
	}
	return 0, fmt.Errorf("no go_gc_heap_live_bytes from %s", addr)
}

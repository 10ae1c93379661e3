package integration

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/inarious/inarious/internal/testutil"
)

// Scenario (cluster): a rolling restart, as an operator upgrades Kafka. Each
// of the three brokers in turn is stopped (controlled shutdown: its
// partitions' leadership moves first), started again, and waited for until
// it is back in the ISR of every partition it holds, before the next; all
// the while the API takes steady traffic and serves routed reads
// (--usage-source=workers). Every read answers a count the client's
// acknowledged requests allow, or 503 with Retry-After; once traffic stops,
// every acknowledged event is counted exactly once: all-time, in the minute
// buckets and in the endpoints table.
func TestClusterRollingRestart(t *testing.T) {
	ctl := needCluster(t)
	resetKafka(t)
	dir := t.TempDir()
	tr := newTraffic(t, 20)
	gw := newGroupWatcher(t)
	names := []string{"worker-1", "worker-2"}
	for _, n := range names {
		startWorker(t, n, filepath.Join(dir, n), append(slices.Clone(clusterArgs), "--query-listen", "127.0.0.1:0")...)
	}
	a := startAPI(t, filepath.Join(dir, "api"), append(slices.Clone(clusterArgs), "--usage-source", "workers")...)
	gw.waitUntil(time.Now(), 90*time.Second, "2 members owning all partitions", func(g groupState) bool { return g.covered(names...) })
	tr.waitReady(a, 90*time.Second)

	l, rd := tr.underLoad(a, 4, "traffic before the restarts")

	tRoll := time.Now()
	var steps []string
	for node := int32(1); node <= 3; node++ {
		down := true
		t.Cleanup(func() {
			if down { // a failed run must not leave the cluster a node short
				ctl.run(t, "start-node", node)
			}
		})
		t0 := time.Now()
		ctl.run(t, "stop-node", node)
		stopped := time.Since(t0)
		// Controlled shutdown handed its leaderships over before it exited.
		if led := ledBy(t, node); len(led) > 0 {
			t.Errorf("node %d stopped and still leads %v", node, led)
		}
		l.waitSent(t, 60*time.Second, l.sent.Load()+300, fmt.Sprintf("traffic with node %d down", node))
		t1 := time.Now()
		ctl.run(t, "start-node", node)
		down = false
		testutil.EventuallyEvery(t, 120*time.Second, 200*time.Millisecond, func() (bool, string) {
			out, err := outOfISR(node)
			if err != nil {
				return false, err.Error()
			}
			return len(out) == 0, fmt.Sprintf("node %d not yet back in the ISR of %v", node, clip(strings.Join(out, " ")))
		})
		rejoined := time.Since(t1)
		steps = append(steps, fmt.Sprintf("node%d_stop=%s node%d_in_isr_after_start=%s", node, ms(stopped), node, ms(rejoined)))
		l.waitSent(t, 60*time.Second, l.sent.Load()+300, fmt.Sprintf("traffic after node %d came back", node))
	}
	rolled := time.Since(tRoll)

	sent := l.halt(t)
	tHalt := time.Now()
	exact, windowsExact, endpointsExact := tr.waitAllExact(a, 120*time.Second)
	caughtUp := time.Since(tHalt)
	reads := rd.halt()
	for _, w := range reads.wrong {
		t.Errorf("wrong read: %s", w)
	}
	acked, counted, dups, missing := tr.tally(a)
	if dups != 0 || missing != 0 || acked != counted {
		t.Errorf("acknowledged %d, counted %d: %d duplicates, %d missing", acked, counted, dups, missing)
	}
	report(t, "%s rolling_restart=%s background_requests=%d acknowledged=%d counted=%d duplicates=%d missing=%d reads=%d reads_200=%d reads_503=%d reads_404=%d wrong_reads=%d counts_exact_after_stop=%s window_sums_exact_after=%s endpoints_exact_after=%s caught_up_after_stop=%s",
		strings.Join(steps, " "), ms(rolled), sent, acked, counted, dups, missing, reads.n, reads.ok, reads.unavailable, reads.notCounted, len(reads.wrong), ms(exact), ms(windowsExact), ms(endpointsExact), ms(caughtUp))
}

// ledBy lists the partitions of every topic whose leader is node.
func ledBy(t *testing.T, node int32) []string {
	t.Helper()
	var out []string
	err := eachPartition(func(topic string, p *sarama.PartitionMetadata) {
		if p.Leader == node {
			out = append(out, fmt.Sprintf("%s/%d", topic, p.ID))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// outOfISR lists the partitions, of every topic, that node holds a replica
// of and is not in sync for.
func outOfISR(node int32) ([]string, error) {
	var out []string
	err := eachPartition(func(topic string, p *sarama.PartitionMetadata) {
		if slices.Contains(p.Replicas, node) && !slices.Contains(p.Isr, node) {
			out = append(out, fmt.Sprintf("%s/%d", topic, p.ID))
		}
	})
	return out, err
}

// eachPartition calls f with every partition of every topic, internal ones
// included (the group coordinator's and transaction coordinator's).
func eachPartition(f func(topic string, p *sarama.PartitionMetadata)) error {
	adm, err := sarama.NewClusterAdmin(brokers, saramaConfig())
	if err != nil {
		return err
	}
	defer adm.Close()
	all, err := adm.ListTopics()
	if err != nil {
		return err
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	parts, err := partitionsOf(names...)
	if err != nil {
		return err
	}
	for topic, ps := range parts {
		for _, p := range ps {
			f(topic, p)
		}
	}
	return nil
}

package integration

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/inarious/inarious/internal/testutil"
)

// envCluster names a three-node cluster started by
// `KAFKA_NODES=3 scripts/kafka.sh start` in this checkout; only then does
// the broker-crash scenario run (it kills and restarts a node).
const envCluster = "INARIOUS_KAFKA_CLUSTER"

// clusterArgs give Inarious' topics the replication the cluster supports.
var clusterArgs = []string{"--replication", "3", "--min-insync-replicas", "2"}

// needCluster skips t unless INARIOUS_KAFKA_CLUSTER lists three brokers that
// the suite also runs against, and returns how to call scripts/kafka.sh on
// that cluster.
func needCluster(t *testing.T) *clusterCtl {
	t.Helper()
	list := os.Getenv(envCluster)
	if list == "" {
		t.Skipf("%s is not set: no 3-node cluster to crash a broker of "+
			"(KAFKA_NODES=3 scripts/kafka.sh start, then %s=<its KAFKA_BROKERS>)", envCluster, envCluster)
	}
	needKafka(t)
	if strings.Join(brokers, ",") != list {
		t.Fatalf("%s=%s but the suite runs against %v: leave %s unset or give both the same list", envCluster, list, brokers, envBrokers)
	}
	if len(brokers) != 3 {
		t.Fatalf("%s lists %d brokers; the scenario needs 3 (replication 3, min.insync.replicas 2)", envCluster, len(brokers))
	}
	c, err := newClusterCtl()
	if err != nil {
		t.Fatalf("cannot control the cluster with scripts/kafka.sh: %v", err)
	}
	return c
}

// clusterCtl runs scripts/kafka.sh with the environment that addresses the
// cluster under test, taken from node 1's generated properties unless the
// caller's environment sets it.
type clusterCtl struct {
	script string
	env    []string
}

func newClusterCtl() (*clusterCtl, error) {
	script := filepath.Join(repoRoot, "scripts", "kafka.sh")
	props, err := os.ReadFile(filepath.Join(repoRoot, ".cache", "kafka", "config", "node-1.properties"))
	if err != nil {
		return nil, fmt.Errorf("no .cache/kafka/config/node-1.properties: the cluster was not started by scripts/kafka.sh in this checkout (%w)", err)
	}
	prop := func(re string) string {
		m := regexp.MustCompile(`(?m)^` + re + `$`).FindSubmatch(props)
		if m == nil {
			return ""
		}
		return string(m[1])
	}
	port := prop(`listeners=PLAINTEXT://127\.0\.0\.1:(\d+),.*`)
	ctrl := prop(`listeners=PLAINTEXT://.*,CONTROLLER://127\.0\.0\.1:(\d+)`)
	data := prop(`log\.dirs=(.*)/node-1`)
	if brokers[0] != "127.0.0.1:"+port {
		return nil, fmt.Errorf("%s starts with %s, node 1 of the cluster kafka.sh last configured listens on 127.0.0.1:%s", envCluster, brokers[0], port)
	}
	env := os.Environ()
	for k, v := range map[string]string{"KAFKA_NODES": strconv.Itoa(len(brokers)), "KAFKA_PORT": port, "KAFKA_CONTROLLER_PORT": ctrl, "KAFKA_DATA_DIR": data} {
		if os.Getenv(k) == "" && v != "" {
			env = append(env, k+"="+v)
		}
	}
	return &clusterCtl{script: script, env: env}, nil
}

// run runs `kafka.sh cmd node` and fails t when it fails.
func (c *clusterCtl) run(t *testing.T, cmd string, node int32) {
	t.Helper()
	x := exec.Command(c.script, cmd, strconv.Itoa(int(node)))
	x.Dir = repoRoot
	x.Env = c.env
	if out, err := x.CombinedOutput(); err != nil {
		t.Fatalf("kafka.sh %s %d: %v\n%s", cmd, node, err, out)
	}
}

// partitionsOf describes topics' partitions; an error when any is missing.
func partitionsOf(topics ...string) (map[string][]*sarama.PartitionMetadata, error) {
	adm, err := sarama.NewClusterAdmin(brokers, saramaConfig())
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	md, err := adm.DescribeTopics(topics)
	if err != nil {
		return nil, err
	}
	out := map[string][]*sarama.PartitionMetadata{}
	for _, m := range md {
		if !errors.Is(m.Err, sarama.ErrNoError) || len(m.Partitions) == 0 {
			return nil, fmt.Errorf("topic %s: %w", m.Name, m.Err)
		}
		out[m.Name] = m.Partitions
	}
	return out, nil
}

// waitAllExact waits, once traffic stopped, until every acknowledged event
// is counted exactly once all-time, then in the minute buckets, then in the
// endpoints table, and returns how long each took.
func (tr *traffic) waitAllExact(a *apiProc, timeout time.Duration) (counts, windows, endpoints time.Duration) {
	tr.t.Helper()
	counts = tr.waitCounts(a, timeout)
	var clients []string
	for c := range tr.snapshot() {
		clients = append(clients, c)
	}
	windows = tr.waitWindowsExact(a, clients, 60*time.Second)
	endpoints = tr.waitEndpointsExact(a, simulatedEndpoints(), 60*time.Second)
	return counts, windows, endpoints
}

// Scenario (cluster): the broker leading most partitions of Users and the
// usage table is killed with SIGKILL under load and restarted later. With
// replication 3 and min.insync.replicas 2 the other two take over: the API
// keeps accepting, the workers keep counting while the node is down, and
// every event the API acknowledged is counted exactly once — all-time, in
// the minute buckets and in the endpoints table.
func TestClusterBrokerCrash(t *testing.T) {
	ctl := needCluster(t)
	resetKafka(t)
	dir := t.TempDir()
	tr := newTraffic(t, 20)
	gw := newGroupWatcher(t)
	a := startAPI(t, filepath.Join(dir, "api"), clusterArgs...)
	tr.waitReady(a, 90*time.Second)
	startWorker(t, "worker-1", filepath.Join(dir, "w1"), clusterArgs...)
	startWorker(t, "worker-2", filepath.Join(dir, "w2"), clusterArgs...)
	gw.waitUntil(time.Now(), 90*time.Second, "2 members owning all partitions", func(g groupState) bool { return g.covered("worker-1", "worker-2") })

	// The flags reached the topics Inarious created.
	adm := kafkaAdmin(t)
	for _, topic := range []string{usersTopic, tableTopic} {
		entries, err := adm.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name == "min.insync.replicas" && e.Value != "2" {
				t.Errorf("%s: min.insync.replicas=%s, want 2", topic, e.Value)
			}
		}
	}
	adm.Close()
	parts, err := partitionsOf(usersTopic, tableTopic)
	if err != nil {
		t.Fatal(err)
	}
	leads := map[int32]int{}
	for topic, ps := range parts {
		for _, p := range ps {
			if len(p.Replicas) != 3 {
				t.Fatalf("%s/%d has replicas %v, want 3", topic, p.ID, p.Replicas)
			}
			leads[p.Leader]++
		}
	}
	// kafka.sh gives node i the node id i, so the leader's id is its node.
	var victim int32
	for id, n := range leads {
		if n > leads[victim] || (n == leads[victim] && id < victim) {
			victim = id
		}
	}
	// A failed run must not leave the cluster a node short for the next one.
	t.Cleanup(func() { ctl.run(t, "start-node", victim) })

	l, rd := tr.underLoad(a, 4, "traffic before the kill")
	tKill := time.Now()
	ctl.run(t, "kill-node", victim)
	t.Logf("killed node %d, leader of %d of the %d partitions of %s and %s (leaders %v)",
		victim, leads[victim], len(parts[usersTopic])+len(parts[tableTopic]), usersTopic, tableTopic, leads)

	// Every partition gets a new leader among the two left.
	elected := testutil.EventuallyEvery(t, 60*time.Second, 100*time.Millisecond, func() (bool, string) {
		parts, err := partitionsOf(usersTopic, tableTopic)
		if err != nil {
			return false, err.Error()
		}
		for topic, ps := range parts {
			for _, p := range ps {
				if p.Leader == victim || p.Leader < 0 {
					return false, fmt.Sprintf("%s/%d still led by %d", topic, p.ID, p.Leader)
				}
			}
		}
		return true, ""
	})
	// With the node down, events keep being accepted and counted: what was
	// answered by now is counted within a minute.
	l.waitSent(t, 60*time.Second, l.sent.Load()+1000, "traffic with a node down")
	caughtUpDown := tr.waitCountsOf(a, tr.snapshot(), true, 90*time.Second)
	downFor := time.Since(tKill)

	tStart := time.Now()
	ctl.run(t, "start-node", victim)
	// The node is back in every ISR: it caught up with what it missed.
	testutil.EventuallyEvery(t, 90*time.Second, 200*time.Millisecond, func() (bool, string) {
		parts, err := partitionsOf(usersTopic, tableTopic)
		if err != nil {
			return false, err.Error()
		}
		for topic, ps := range parts {
			for _, p := range ps {
				if !slices.Contains(p.Isr, victim) {
					return false, fmt.Sprintf("%s/%d: node %d not in ISR %v", topic, p.ID, victim, p.Isr)
				}
			}
		}
		return true, ""
	})
	rejoined := time.Since(tStart) // kafka.sh's start included
	l.waitSent(t, 60*time.Second, l.sent.Load()+500, "traffic after the restart")

	sent := l.halt(t)
	exact, windowsExact, endpointsExact := tr.waitAllExact(a, 90*time.Second)
	reads := rd.halt()
	for _, w := range reads.wrong {
		t.Errorf("wrong read: %s", w)
	}
	acked, counted, dups, missing := tr.tally(a)
	report(t, "victim_node=%d partitions_led=%d new_leaders_after=%s counted_with_node_down_after=%s node_down_for=%s isr_full_after_restart=%s background_requests=%d acknowledged=%d counted=%d duplicates=%d missing=%d reads=%d reads_200=%d reads_503=%d reads_404=%d wrong_reads=%d counts_exact_after_stop=%s window_sums_exact_after=%s endpoints_exact_after=%s",
		victim, leads[victim], ms(elected), ms(caughtUpDown), ms(downFor), ms(rejoined), sent, acked, counted, dups, missing,
		reads.n, reads.ok, reads.unavailable, reads.notCounted, len(reads.wrong), ms(exact), ms(windowsExact), ms(endpointsExact))
}

package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/processors/dedupe"
	endpointsgroup "github.com/inarious/inarious/processors/endpoints"
	"github.com/inarious/inarious/processors/usage"
)

var (
	usersTopic      = string(codecs.ActivityTopic)
	deadLetterTopic = string(usage.DeadLetterTopic)
	usageGroup      = string(usage.Group)
	tableTopic      = usageGroup + "-table"
)

// saramaConfig is a plain client configuration for the test's own Kafka use.
func saramaConfig() *sarama.Config {
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.ClientID = "inarious-integration-test"
	sc.Net.DialTimeout = 3 * time.Second
	sc.Net.ReadTimeout = 10 * time.Second
	sc.Metadata.Retry.Max = 2
	sc.Metadata.Retry.Backoff = 200 * time.Millisecond
	sc.Admin.Timeout = 10 * time.Second
	return sc
}

// kafkaAdmin is a short-lived admin client; the caller closes it.
func kafkaAdmin(t *testing.T) sarama.ClusterAdmin {
	t.Helper()
	var adm sarama.ClusterAdmin
	testutil.Eventually(t, 60*time.Second, func() (bool, string) {
		a, err := sarama.NewClusterAdmin(brokers, saramaConfig())
		if err != nil {
			return false, fmt.Sprintf("admin connection to %s: %v", strings.Join(brokers, ","), err)
		}
		adm = a
		return true, ""
	})
	return adm
}

// resetKafka deletes what the previous scenario left: the usage group (its
// committed offsets) and the Users, dead-letter and table topics. Processes
// of the previous test are stopped by then (t.Cleanup), but a member of a
// SIGKILLed worker may linger until its session times out, so deleting the
// group is retried.
func resetKafka(t *testing.T) {
	t.Helper()
	t0 := time.Now()
	adm := kafkaAdmin(t)
	defer adm.Close()
	groups := []string{usageGroup, string(endpointsgroup.Group), endpointsgroup.AggregatorGroup, dedupe.Group}
	for _, g := range groups {
		testutil.Eventually(t, 45*time.Second, func() (bool, string) {
			err := adm.DeleteConsumerGroup(g)
			return err == nil || errors.Is(err, sarama.ErrGroupIDNotFound),
				fmt.Sprintf("delete group %s (it must be empty): %v", g, err)
		})
	}
	// Every topic the groups declare: the loop and control topics are
	// inputs that must have as many partitions as this run's Users; windowed
	// ones and the endpoints table would carry counts over from the last run.
	var topics []string
	for _, spec := range slices.Concat(usage.Topics(), endpointsgroup.Topics(), dedupe.New().Topics()) {
		if !slices.Contains(topics, spec.Name) {
			topics = append(topics, spec.Name)
		}
	}
	for _, tp := range topics {
		if err := adm.DeleteTopic(tp); err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			t.Fatalf("delete topic %s: %v", tp, err)
		}
	}
	testutil.Eventually(t, 60*time.Second, func() (bool, string) {
		all, err := adm.ListTopics()
		if err != nil {
			return false, fmt.Sprintf("list topics: %v", err)
		}
		for _, tp := range topics {
			if _, ok := all[tp]; ok {
				return false, "deleted topic " + tp + " still listed"
			}
		}
		return true, ""
	})
	t.Logf("kafka reset (groups %v, topics %v deleted) in %v", groups, topics, time.Since(t0).Round(time.Millisecond))
}

// groupState is the usage group as the coordinator describes it.
type groupState struct {
	State   string
	Members map[string][]int32 // client id -> assigned partitions of Users
}

func (g groupState) String() string {
	var names []string
	for n := range g.Members {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "%s", g.State)
	for _, n := range names {
		fmt.Fprintf(&b, " %s=%v", n, g.Members[n])
	}
	return b.String()
}

// covered reports whether the group is stable with exactly the given members
// (by client id; nil: any) each owning partitions, all partitions owned once.
func (g groupState) covered(members ...string) bool {
	if g.State != "Stable" {
		return false
	}
	if members != nil && len(g.Members) != len(members) {
		return false
	}
	for _, m := range members {
		if _, ok := g.Members[m]; !ok {
			return false
		}
	}
	seen := map[int32]bool{}
	for _, parts := range g.Members {
		if len(parts) == 0 && len(g.Members) <= partitions {
			return false
		}
		for _, p := range parts {
			if seen[p] {
				return false
			}
			seen[p] = true
		}
	}
	return len(seen) == partitions
}

func describeGroup(adm sarama.ClusterAdmin) (groupState, error) {
	ds, err := adm.DescribeConsumerGroups([]string{usageGroup})
	if err != nil {
		return groupState{}, err
	}
	if len(ds) != 1 {
		return groupState{}, fmt.Errorf("describe %s: %d descriptions", usageGroup, len(ds))
	}
	d := ds[0]
	if d.Err != sarama.ErrNoError {
		return groupState{}, d.Err
	}
	g := groupState{State: d.State, Members: map[string][]int32{}}
	for _, m := range d.Members {
		var parts []int32
		if len(m.MemberAssignment) > 0 {
			a, err := m.GetMemberAssignment()
			if err != nil {
				return groupState{}, fmt.Errorf("member %s assignment: %w", m.ClientId, err)
			}
			parts = append(parts, a.Topics[usersTopic]...)
			sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
		}
		name := m.ClientId
		if _, dup := g.Members[name]; dup {
			name += "#" + m.MemberId[len(m.MemberId)-6:]
		}
		g.Members[name] = parts
	}
	return g, nil
}

// groupWatcher polls the group description.
type groupWatcher struct {
	t   *testing.T
	adm sarama.ClusterAdmin
}

func newGroupWatcher(t *testing.T) *groupWatcher {
	adm := kafkaAdmin(t)
	t.Cleanup(func() { adm.Close() })
	return &groupWatcher{t: t, adm: adm}
}

func (w *groupWatcher) describe() groupState {
	g, err := describeGroup(w.adm)
	if err != nil {
		w.t.Logf("describe group: %v", err)
	}
	return g
}

// waitSoleOwner waits until member alone owns every partition, and returns
// how long that took since it started.
func (w *groupWatcher) waitSoleOwner(since time.Time, member string) time.Duration {
	w.t.Helper()
	_, took := w.waitUntil(since, 60*time.Second, member+" to own all partitions", func(g groupState) bool { return g.covered(member) })
	return took
}

// waitUntil polls the group until cond holds and returns the state then and
// the time it took from since.
func (w *groupWatcher) waitUntil(since time.Time, timeout time.Duration, what string, cond func(groupState) bool) (groupState, time.Duration) {
	w.t.Helper()
	var last groupState
	testutil.EventuallyEvery(w.t, timeout, 50*time.Millisecond, func() (bool, string) {
		g, err := describeGroup(w.adm)
		if err == nil {
			last = g
			if cond(g) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("group %s: waiting for %s; last state: %v (err %v)", usageGroup, what, last, err)
	})
	return last, time.Since(since)
}

// topicRecords is the number of records in every partition of topic (end
// offset minus start offset; the suite never deletes records).
func topicRecords(t *testing.T, topic string) int64 {
	t.Helper()
	client, err := sarama.NewClient(brokers, saramaConfig())
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	var n int64
	for _, p := range parts {
		newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatalf("end offset %s/%d: %v", topic, p, err)
		}
		oldest, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("start offset %s/%d: %v", topic, p, err)
		}
		n += newest - oldest
	}
	return n
}

// readTopic reads want records of topic from the beginning of every
// partition, failing after timeout.
func readTopic(t *testing.T, topic string, want int, timeout time.Duration) []*sarama.ConsumerMessage {
	t.Helper()
	consumer, err := sarama.NewConsumer(brokers, saramaConfig())
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer consumer.Close()
	parts, err := consumer.Partitions(topic)
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	msgs := make(chan *sarama.ConsumerMessage, 1024)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("consume %s/%d: %v", topic, p, err)
		}
		defer pc.Close()
		go func() {
			for {
				select {
				case m, ok := <-pc.Messages():
					if !ok {
						return
					}
					select {
					case msgs <- m:
					case <-ctx.Done():
						return
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	var out []*sarama.ConsumerMessage
	for len(out) < want {
		select {
		case m := <-msgs:
			out = append(out, m)
		case <-ctx.Done():
			t.Fatalf("read %d of %d records of %s within %v", len(out), want, topic, timeout)
		}
	}
	return out
}

// ---- the broker process, for the outage scenario

// kafkaScript locates scripts/kafka.sh and the environment that addresses
// the broker under test: KAFKA_PORT, KAFKA_CONTROLLER_PORT and KAFKA_DATA_DIR
// are taken from the caller's environment or, when unset, from the
// server.properties kafka.sh generated, so `stop` and `start` act on the very
// broker INARIOUS_KAFKA_BROKERS points at. ok is false (with a reason) when
// that broker is not one kafka.sh runs from this checkout.
func kafkaScript() (script string, env []string, reason string) {
	script = filepath.Join(repoRoot, "scripts", "kafka.sh")
	if _, err := os.Stat(script); err != nil {
		return "", nil, "scripts/kafka.sh not found"
	}
	props, err := os.ReadFile(filepath.Join(repoRoot, ".cache", "kafka", "config", "server.properties"))
	if err != nil {
		return "", nil, "no .cache/kafka/config/server.properties: the broker was not started by scripts/kafka.sh in this checkout"
	}
	prop := func(re string) string {
		m := regexp.MustCompile(`(?m)^` + re + `$`).FindSubmatch(props)
		if m == nil {
			return ""
		}
		return string(m[1])
	}
	port := prop(`listeners=PLAINTEXT://127\.0\.0\.1:(\d+),.*`)
	ctrl := prop(`controller\.quorum\.voters=1@127\.0\.0\.1:(\d+)`)
	data := prop(`log\.dirs=(.*)`)
	if len(brokers) != 1 || brokers[0] != "127.0.0.1:"+port {
		return "", nil, fmt.Sprintf("%s=%v is not the broker scripts/kafka.sh last configured (127.0.0.1:%s)", envBrokers, brokers, port)
	}
	env = os.Environ()
	set := func(k, v string) {
		if os.Getenv(k) == "" && v != "" {
			env = append(env, k+"="+v)
		}
	}
	set("KAFKA_PORT", port)
	set("KAFKA_CONTROLLER_PORT", ctrl)
	set("KAFKA_DATA_DIR", data)
	if p := os.Getenv("KAFKA_PORT"); p != "" && p != port {
		return "", nil, fmt.Sprintf("KAFKA_PORT=%s but the broker listens on %s", p, port)
	}
	return script, env, ""
}

// kafkaCtl runs scripts/kafka.sh cmd and returns its combined output.
func kafkaCtl(t *testing.T, cmd string) (string, error) {
	t.Helper()
	script, env, reason := kafkaScript()
	if reason != "" {
		t.Fatalf("cannot %s the broker: %s", cmd, reason)
	}
	c := exec.Command(script, cmd)
	c.Dir = repoRoot
	c.Env = env
	out, err := c.CombinedOutput()
	return string(out), err
}

// runClass runs a Kafka tool class through scripts/kafka.sh run-class and
// returns stdout and stderr.
func runClass(t *testing.T, timeout time.Duration, stdin string, class string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c := exec.CommandContext(ctx, filepath.Join(repoRoot, "scripts", "kafka.sh"), append([]string{"run-class", class}, args...)...)
	c.Dir = repoRoot
	var stdout, stderr strings.Builder
	c.Stdout, c.Stderr = &stdout, &stderr
	if stdin != "" {
		c.Stdin = strings.NewReader(stdin)
	}
	err := c.Run()
	return stdout.String(), stderr.String(), err
}

// waitRecords waits until Users holds one record per response the API gave
// (the last responses' events may still be on their way) and returns it.
func waitRecords(t *testing.T, tr *traffic) int64 {
	t.Helper()
	var records int64
	testutil.EventuallyEvery(t, 15*time.Second, 100*time.Millisecond, func() (bool, string) {
		records = topicRecords(t, usersTopic)
		responses := tr.responses.Load()
		if records > responses {
			t.Fatalf("Users holds %d records, more than the %d responses the API gave", records, responses)
		}
		return records == responses, fmt.Sprintf("Users holds %d records; the API answered %d requests", records, responses)
	})
	return records
}

// committed returns the usage group's committed offsets of Users (-1: none).
func committed(t *testing.T) map[int32]int64 {
	t.Helper()
	return committedOf(t, usageGroup, usersTopic)
}

// committedOf returns group's committed offsets of topic (-1: none).
func committedOf(t *testing.T, group, topic string) map[int32]int64 {
	t.Helper()
	adm := kafkaAdmin(t)
	defer adm.Close()
	parts := make([]int32, partitions)
	for i := range parts {
		parts[i] = int32(i)
	}
	// Right after a broker restart the coordinator answers "still loading
	// offsets" for a while: ask again until it has them.
	var resp *sarama.OffsetFetchResponse
	testutil.Eventually(t, 60*time.Second, func() (bool, string) {
		var err error
		resp, err = adm.ListConsumerGroupOffsets(group, map[string][]int32{topic: parts})
		return err == nil, fmt.Sprintf("committed offsets: %v", err)
	})
	out := map[int32]int64{}
	for p, b := range resp.Blocks[topic] {
		out[p] = b.Offset
	}
	return out
}

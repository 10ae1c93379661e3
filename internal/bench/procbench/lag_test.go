package procbench_test

import (
	"testing"

	"github.com/IBM/sarama"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/bench/procbench"
	"github.com/inarious/inarious/internal/kafka/kafkatest"
	"github.com/inarious/inarious/processors/usage"
)

// GroupLag is the sum of kafka.ConsumerLag: the same scenario as its test.
func TestGroupLagCountsFromTheLogStart(t *testing.T) {
	topic, group := string(codecs.ActivityTopic), string(usage.Group)
	c := kafkatest.Start(t, topic, 4)
	c.Produce(topic, 10, 0, 1, 2, 3)
	c.DeleteBefore(topic, 3, 7)
	lag := func() int64 {
		t.Helper()
		n, err := procbench.GroupLag(c.Addrs, sarama.V3_6_0_0)
		if err != nil {
			t.Errorf("GroupLag: %v", err)
			return -1
		}
		return n
	}
	if got := lag(); got != 10+10+10+3 {
		t.Errorf("lag before any commit = %d, want 33", got)
	}
	c.Commit(group, topic, map[int32]int64{0: 4, 1: 10})
	if got := lag(); got != 6+0+10+3 {
		t.Errorf("lag = %d, want 19", got)
	}
}

package kafka

import "github.com/IBM/sarama"

const RecoverySubscriber = recoverySubscriber

// TablePartitions counts the partitions c's live consumer and its recovery
// consumer hold; recoveryBuilt says whether a recovery ever consumed.
func TablePartitions(c sarama.Consumer) (live, recovery int, recoveryBuilt bool) {
	tc := c.(*tableConsumer)
	count := func(m *member) (n int) {
		for _, ps := range m.HighWaterMarks() {
			n += len(ps)
		}
		return n
	}
	live = count(tc.live)
	tc.mu.Lock()
	r := tc.recovery
	tc.mu.Unlock()
	if r != nil {
		recovery, recoveryBuilt = count(r), true
	}
	return live, recovery, recoveryBuilt
}

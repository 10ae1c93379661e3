package kafka

import (
	"testing"

	"github.com/rcrowley/go-metrics"
)

// sarama's own metrics cost CPU per request and nobody reads them: every
// meter it registers through our configuration is a no-op.
func TestSaramaMetricsAreOff(t *testing.T) {
	sc := Config{Brokers: []string{"127.0.0.1:9092"}}.Sarama()
	m := metrics.GetOrRegisterMeter("incoming-byte-rate", sc.MetricRegistry)
	m.Mark(10)
	if _, ok := m.(metrics.NilMeter); !ok || m.Snapshot().Count() != 0 {
		t.Fatalf("sarama's meter is %T counting %d, want a no-op", m, m.Snapshot().Count())
	}
}

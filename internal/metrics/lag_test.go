package metrics_test

import (
	"fmt"
	"testing"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/kafka/kafkatest"
	"github.com/inarious/inarious/internal/metrics"
)

// The group's series are kafka.ConsumerLag: the same scenario as its test.
func TestLagSeriesOfTheGroup(t *testing.T) {
	const topic, group = "Users", "usage"
	c := kafkatest.Start(t, topic, 4)
	c.Produce(topic, 10, 0, 1, 2, 3)
	c.DeleteBefore(topic, 3, 7)
	client, err := sarama.NewClient(c.Addrs, kafka.Defaults().Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	lag, err := metrics.NewLag(client, []metrics.LagSource{{Group: group, Input: topic}})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(lag)
	series := func() map[string]float64 {
		t.Helper()
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, f := range fams {
			for _, m := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				out[fmt.Sprintf("%s %s/%s", labels["consumer"], labels["topic"], labels["partition"])] = m.GetGauge().GetValue()
			}
		}
		return out
	}
	if got, want := series(), map[string]float64{"usage Users/0": 10, "usage Users/1": 10, "usage Users/2": 10, "usage Users/3": 3}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("lag before any commit = %v, want %v", got, want)
	}
	c.Commit(group, topic, map[int32]int64{0: 4, 1: 10})
	if got, want := series(), map[string]float64{"usage Users/0": 6, "usage Users/1": 0, "usage Users/2": 10, "usage Users/3": 3}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("lag = %v, want %v", got, want)
	}
}

package kafka_test

import (
	"fmt"
	"testing"

	"github.com/IBM/sarama"

	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/kafka/kafkatest"
)

func TestConsumerLag(t *testing.T) {
	const topic, group = "Users", "usage"
	c := kafkatest.Start(t, topic, 4)
	c.Produce(topic, 10, 0, 1, 2, 3)
	c.DeleteBefore(topic, 3, 7) // as retention would

	client, err := sarama.NewClient(c.Addrs, kafka.Defaults().Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client) // closed with client
	if err != nil {
		t.Fatal(err)
	}
	lag := func() map[int32]int64 {
		t.Helper()
		lags, err := kafka.ConsumerLag(client, admin, group, topic)
		if err != nil {
			t.Fatal(err)
		}
		return lags
	}

	// A group that never committed starts from the oldest record still
	// there: it lags by what each log holds, 3 where records were deleted.
	if got, want := lag(), map[int32]int64{0: 10, 1: 10, 2: 10, 3: 3}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("lag before any commit = %v, want %v", got, want)
	}
	c.Commit(group, topic, map[int32]int64{0: 4, 1: 10})
	if got, want := lag(), map[int32]int64{0: 6, 1: 0, 2: 10, 3: 3}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("lag = %v, want %v", got, want)
	}

	if _, err := kafka.ConsumerLag(client, admin, group, "no-such-topic"); err == nil {
		t.Error("no error for a topic that does not exist")
	}
}

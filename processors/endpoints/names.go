package endpoints

import (
	"time"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/kafka"
)

// Names of the group, its table, its input and the aggregator's consumer
// group.
const (
	Group goka.Group = "endpoints"
	// PartialsTopic carries the aggregator's partials (EndpointPartial),
	// keyed like the table's rows, written in transactions.
	PartialsTopic goka.Stream = "endpoints-partials"
	// AggregatorGroup is the consumer group in which workers' aggregators
	// share the partitions of Users.
	AggregatorGroup = "endpoints-aggregator"
)

// Table is the group table (topic "endpoints-table"), keyed by endpoint and
// bucket (see keys.go), values *Row (RowCodec).
var Table = goka.GroupTable(Group)

// Partials are merged within seconds; a day covers any outage of the group.
const partialsRetention = 24 * time.Hour

// Topics the group reads and writes: Users (which the usage group creates
// too), the partials topic and the table. The partials topic has Users'
// partition count, so a worker's share of both is alike.
func Topics() []kafka.TopicSpec {
	partials := kafka.Stream(string(PartialsTopic), partialsRetention)
	partials.CoPartitionedWith = string(codecs.ActivityTopic)
	return []kafka.TopicSpec{
		kafka.Stream(string(codecs.ActivityTopic), 7*24*time.Hour),
		partials,
		kafka.Table(string(Table)),
	}
}

package kafka

import "time"

// FetchWait is how long a consumer's fetch waits at the broker for a first
// byte (Fetch.Min = 1). A fetch returns as soon as a record is produced to
// any partition it asks for (Kafka's fetch purgatory, kfake's watchers), so
// the wait costs no freshness; it bounds only fetches that find nothing.
// Each of a process' sarama consumers (the worker's group, the usage view,
// the windowed views) polls once per wait when idle: with the 10 ms wait
// Inarious had, the idle one-command run spent 7 % of a core on fetches.
// 500 ms (sarama's default) left it as quiet as 1 s did, within the noise of
// the measurement, and a second worker's join and leave took as long as
// with 10 ms; with 1 s they took 0.4 to 1 s longer.
//
// What a long wait costs: sarama adds a partition to a broker's fetch loop,
// and lets a closed one go, only between two fetches, and Kafka (and kfake)
// answer one request per connection at a time. goka's table consumers work
// around the first (TableConsumerBuilder). The worker's group consumer is
// sarama's own: a rebalance and a shutdown can wait up to one FetchWait for
// its partitions to close, and its heartbeats, commits and joins, which
// share the connection to the coordinator, behind an idle fetch as long.
// BENCHMARKS.md, "Quiet when idle".
const FetchWait = 500 * time.Millisecond

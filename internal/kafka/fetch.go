package kafka

import "time"

// FetchWait is how long a consumer's fetch waits at the broker for a first
// byte (Fetch.Min = 1). A fetch returns as soon as a record is produced to
// any partition it asks for (Kafka's fetch purgatory, kfake's watchers), so
// the wait costs no freshness; it bounds only fetches that find nothing.
// Each of a process' sarama consumers (the worker's group, the usage view,
// the windowed views) polls once per wait when idle: with the 10 ms wait
// Inarious had, the idle one-command run spent 7 % of a core on fetches.
//
// What a long wait does cost: sarama adds a partition to a broker's fetch
// loop, and lets a closed one go, only between two fetches, and Kafka (and
// kfake) answer one request per connection at a time. So a partition
// consumer's Close, a new subscription, and a group heartbeat, commit or join
// (which share the connection to the coordinator) can each wait for an
// in-flight idle fetch: goka's recovery-to-catch-up hand-over, a rebalance
// and shutdown take up to one wait longer. BENCHMARKS.md, "Quiet when idle".
const FetchWait = time.Second

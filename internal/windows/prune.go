package windows

import "time"

// Local storage of the windowed topics (a view's, a worker's joined
// partitions) keeps what Kafka's retention drops from the topics, so its
// readers prune it: each granularity PruneEvery, with Prune.

// PruneEvery is how often s's buckets are pruned from local storage: 48
// times per retention (hourly for 48 h of minutes), so local storage holds
// at most ~2 % more than the retention; at least a minute and at most a
// day apart.
func (s Spec) PruneEvery() time.Duration {
	return min(max(s.Retention/48, time.Minute), 24*time.Hour)
}

// PruneEvery is the shortest PruneEvery of c's granularities (a day
// without any), for one pruner of them all.
func (c Config) PruneEvery() time.Duration {
	every := 24 * time.Hour
	for _, s := range c.Specs {
		every = min(every, s.PruneEvery())
	}
	return every
}

// PruneBefore is the earliest start (Unix seconds) a bucket of s keeps at
// now: older ones lie beyond any query (the retention and a step).
func (s Spec) PruneBefore(now time.Time) int64 {
	return StartUnix(now.Add(-s.Retention).UnixNano(), s.Step) - int64(s.Step/time.Second)
}

// Keys walks a store of windowed keys in key order, as Prune reads it.
type Keys interface {
	Next() bool
	Key() string
	// Seek moves to the first key at or after key and reports whether
	// there is one; Key then returns it (no Next in between).
	Seek(key string) bool
	Err() error
}

// Prune deletes the buckets among keys that start before cutoff (Unix
// seconds; Spec.PruneBefore) with del, which reports false for a key that
// is not its store's to delete, and says how many it deleted. Keys sort by
// client, then start, so old keys are spread through the store: for each
// client Prune deletes from its first key on while they are too old, then
// seeks past the client's younger keys.
func Prune(keys Keys, cutoff int64, del func(key string) (bool, error)) (int, error) {
	deleted := 0
	more := keys.Next()
	for more {
		key := keys.Key()
		client, start, ok := ParseKey(key)
		switch {
		case ok && start < cutoff:
			done, err := del(key)
			if err != nil {
				return deleted, err
			}
			if done {
				deleted++
			}
			more = keys.Next()
		case ok:
			more = keys.Seek(Key(client, lastStart) + "\x00")
		default:
			more = keys.Next()
		}
	}
	return deleted, keys.Err()
}

// lastStart is the largest start a key can hold.
const lastStart = 999999999999

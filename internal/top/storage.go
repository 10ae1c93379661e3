package top

import (
	"fmt"

	"github.com/lovoo/goka/storage"

	"github.com/inarious/inarious/codecs"
)

// Indexing is a storage layer (tablestore.Layer): the storages of topic (a
// table of activitypb.ClientUsage) keep idx (all calls, and each service's,
// read from the endpoints' keys) up to date with every write
// goka makes, recovery and processing alike: opening a partition's storage
// loads what it holds (a warm start replays nothing), Set and Delete
// follow, MarkRecovered ranks a partition rebuilt from the changelog, Close
// forgets it. The same layer serves a view (every partition) and a
// processor (its own).
func Indexing(topic string, idx *Index) func(storage.Builder) storage.Builder {
	return func(b storage.Builder) storage.Builder {
		return func(t string, partition int32) (storage.Storage, error) {
			st, err := b(t, partition)
			if err != nil || t != topic {
				return st, err
			}
			return &indexedStorage{Storage: st, idx: idx, partition: partition}, nil
		}
	}
}

type indexedStorage struct {
	storage.Storage
	idx       *Index
	partition int32
}

func (s *indexedStorage) Open() error {
	if err := s.Storage.Open(); err != nil {
		return err
	}
	// goka recovers the partition next; the index rebuilds it meanwhile.
	s.idx.Recovering(s.partition)
	it, err := s.Storage.Iterator()
	if err != nil {
		return fmt.Errorf("usage index: %w", err)
	}
	defer it.Release()
	var readErr error
	var buf [maxInlineServices]codecs.ServiceCalls
	s.idx.Seed(s.partition, func(yield func(string, Usage) bool) {
		for it.Next() {
			v, err := it.Value()
			if err != nil {
				readErr = fmt.Errorf("usage index: read %q: %w", it.Key(), err)
				return
			}
			u, err := UsageOf(v, buf[:0])
			if err != nil {
				continue // as Set: unreadable values are not listed
			}
			if !yield(string(it.Key()), u) {
				return
			}
		}
	})
	if readErr == nil {
		readErr = it.Err()
	}
	if readErr != nil {
		s.idx.Recovering(s.partition) // nothing half-loaded
		return fmt.Errorf("usage index: %w", readErr)
	}
	return nil
}

// maxInlineServices is how many services a row may have before Set's
// parse allocates.
const maxInlineServices = 8

func (s *indexedStorage) Set(key string, value []byte) error {
	if err := s.Storage.Set(key, value); err != nil {
		return err
	}
	var buf [maxInlineServices]codecs.ServiceCalls
	u, err := UsageOf(value, buf[:0])
	if err != nil {
		// Stored already; a value nobody can read is not listed either.
		s.idx.Delete(s.partition, key)
		return nil
	}
	s.idx.Set(s.partition, key, u)
	return nil
}

// UsageOf reads what the index takes of an encoded activitypb.ClientUsage.
// The services are appended to into and their names point into value.
func UsageOf(value []byte, into []codecs.ServiceCalls) (Usage, error) {
	total, seen, services, err := codecs.UsageByService(value, into)
	return Usage{Total: total, LastSeen: seen, Services: services}, err
}

func (s *indexedStorage) Delete(key string) error {
	if err := s.Storage.Delete(key); err != nil {
		return err
	}
	s.idx.Delete(s.partition, key)
	return nil
}

// MarkRecovered is goka's signal that the partition caught up: the index
// ranks the partition before goka reports it running.
func (s *indexedStorage) MarkRecovered() error {
	s.idx.Recovered(s.partition)
	return s.Storage.MarkRecovered()
}

func (s *indexedStorage) Close() error {
	s.idx.Forget(s.partition)
	return s.Storage.Close()
}

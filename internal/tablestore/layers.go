package tablestore

import "github.com/lovoo/goka/storage"

// Layer wraps the storages a builder builds with one job: an index that
// follows the writes, a registry that lets others read open partitions, a
// write cache. It filters by topic itself: a layer passes the storages of
// topics it does not handle through unchanged.
type Layer = func(storage.Builder) storage.Builder

// Stack builds base's storages wrapped in layers, the first innermost, so
// a group states its storage in one expression, as Kafka Streams'
// KeyValueStoreBuilder.build() does:
//
//	Stack(leveldb, indexing, registry.Layer(tracked), cache.WrapStorage)
//
// A nil layer is left out.
func Stack(base storage.Builder, layers ...Layer) storage.Builder {
	for _, l := range layers {
		if l != nil {
			base = l(base)
		}
	}
	return base
}

package windows

import (
	"hash"
	"strings"

	"github.com/inarious/inarious/internal/kafka"
)

// IsTopic reports whether topic is a windowed topic.
func IsTopic(topic string) bool { return strings.HasPrefix(topic, TopicPrefix) }

// PartitionKey is the part of a windowed topic's key that places the record:
// its client. A client's closed buckets then sit in the partition of Users
// and of the usage table that holds the client, so the worker owning the
// client also holds its buckets (a goka Join of the windowed topic). A key
// that is not a windowed key places itself.
func PartitionKey(key []byte) []byte {
	n := len(key) - keyDigits - 1
	if n < 0 || key[n] != 0 {
		return key
	}
	for _, d := range key[n+1:] {
		if d < '0' || d > '9' {
			return key
		}
	}
	return key[:n]
}

// Hasher places windowed keys as producers of the windowed topics do:
// murmur2 (kafka.Hasher) of PartitionKey. Readers of a windowed topic that
// look keys up by partition (a goka view's Get and Evict) need it.
func Hasher() hash.Hash32 { return kafka.PartitionHasher(PartitionKey) }

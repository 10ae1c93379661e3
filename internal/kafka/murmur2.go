package kafka

import "hash"

// Hasher partitions keys exactly as Kafka's Java client (and librdkafka's
// murmur2 partitioner, franz-go, aiokafka) do: murmur2 with the sign bit
// masked. goka's default is sarama's FNV-1a, which would put an event that an
// ordinary Kafka producer keyed by client into another partition than the one
// whose table holds that client.
func Hasher() hash.Hash32 { return new(murmur2Hash) }

type murmur2Hash struct{ buf []byte }

func (h *murmur2Hash) Write(p []byte) (int, error) { h.buf = append(h.buf, p...); return len(p), nil }
func (h *murmur2Hash) Reset()                      { h.buf = h.buf[:0] }
func (h *murmur2Hash) Size() int                   { return 4 }
func (h *murmur2Hash) BlockSize() int              { return 4 }

// Sum32 is non-negative as an int32, so goka's and sarama's "absolute value
// modulo partitions" equals Kafka's "mask modulo partitions".
func (h *murmur2Hash) Sum32() uint32 { return murmur2(h.buf) & 0x7fffffff }

func (h *murmur2Hash) Sum(b []byte) []byte {
	s := h.Sum32()
	return append(b, byte(s>>24), byte(s>>16), byte(s>>8), byte(s))
}

// PartitionHasher is Hasher over partitionKey(key), the part of a key that
// places its record (a bucket's key by its client or endpoint), for readers
// that look such keys up by partition (goka's views and processors).
func PartitionHasher(partitionKey func(key []byte) []byte) hash.Hash32 {
	return &partHash{part: partitionKey}
}

type partHash struct {
	part func([]byte) []byte
	buf  []byte
}

func (h *partHash) Write(p []byte) (int, error) { h.buf = append(h.buf, p...); return len(p), nil }
func (h *partHash) Reset()                      { h.buf = h.buf[:0] }
func (h *partHash) Size() int                   { return 4 }
func (h *partHash) BlockSize() int              { return 4 }
func (h *partHash) Sum32() uint32               { return murmur2(h.part(h.buf)) & 0x7fffffff }

func (h *partHash) Sum(b []byte) []byte {
	s := h.Sum32()
	return append(b, byte(s>>24), byte(s>>16), byte(s>>8), byte(s))
}

// murmur2 is Kafka's Utils.murmur2.
func murmur2(b []byte) uint32 {
	const (
		seed uint32 = 0x9747b28c
		m    uint32 = 0x5bd1e995
		r           = 24
	)
	h := seed ^ uint32(len(b))
	for len(b) >= 4 {
		k := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		b = b[4:]
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// PartitionOf is the partition Kafka's default partitioner (and goka with
// Hasher) picks for key among n partitions.
func PartitionOf(key string, n int) int32 {
	return int32(murmur2([]byte(key))&0x7fffffff) % int32(n)
}

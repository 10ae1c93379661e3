package endpoints

import (
	"hash"
	"strconv"
	"strings"
	"time"

	"github.com/inarious/inarious/internal/kafka"
)

// Keys of the endpoints table (and of the partials topic, which is keyed
// like it): an endpoint's all-time row is keyed by the endpoint,
// "METHOD /route"; its bucket rows by BucketKey. An endpoint's rows all sit
// in the partition of the endpoint (PartitionKey), so the member owning an
// endpoint answers for all of them.

const (
	stepDigits  = 8  // bucket steps up to 3 years in seconds
	startDigits = 12 // bucket starts up to the year 33658
)

// BucketKey is the key of endpoint's bucket of step starting at startUnix:
// the endpoint, a NUL, the step and the start as zero-padded decimal
// seconds (NUL-separated), so one endpoint's buckets of a step sort by time.
func BucketKey(endpoint string, step time.Duration, startUnix int64) string {
	b := make([]byte, 0, len(endpoint)+2+stepDigits+startDigits)
	b = append(b, endpoint...)
	b = append(b, 0)
	b = appendPadded(b, int64(step/time.Second), stepDigits)
	b = append(b, 0)
	return string(appendPadded(b, startUnix, startDigits))
}

func appendPadded(b []byte, n int64, width int) []byte {
	s := strconv.FormatInt(max(n, 0), 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// ParseKey splits a row key: the endpoint, and for a bucket row its step and
// start (bucket false for an all-time row). ok is false for a key that is
// neither.
func ParseKey(key string) (endpoint string, step time.Duration, startUnix int64, bucket, ok bool) {
	i := strings.IndexByte(key, 0)
	if i < 0 {
		return key, 0, 0, false, key != ""
	}
	rest := key[i+1:]
	if len(rest) != stepDigits+1+startDigits || rest[stepDigits] != 0 {
		return "", 0, 0, false, false
	}
	s, err1 := strconv.ParseInt(rest[:stepDigits], 10, 64)
	start, err2 := strconv.ParseInt(rest[stepDigits+1:], 10, 64)
	if err1 != nil || err2 != nil || s <= 0 || start < 0 {
		return "", 0, 0, false, false
	}
	return key[:i], time.Duration(s) * time.Second, start, true, true
}

// BucketRange is the key range [start, limit) of endpoint's buckets of step
// whose start lies in [fromUnix, toUnix].
func BucketRange(endpoint string, step time.Duration, fromUnix, toUnix int64) (start, limit string) {
	return BucketKey(endpoint, step, fromUnix), BucketKey(endpoint, step, toUnix+1)
}

// BucketIn reports whether key is endpoint's bucket of step with a start in
// [fromUnix, toUnix], and that start: what a scan of BucketRange keeps.
func BucketIn(key, endpoint string, step time.Duration, fromUnix, toUnix int64) (startUnix int64, ok bool) {
	ep, s, st, bucket, valid := ParseKey(key)
	if !valid || !bucket || ep != endpoint || s != step || st < fromUnix || st > toUnix {
		return 0, false
	}
	return st, true
}

// PartitionKey is the part of a row key that places it: the endpoint.
func PartitionKey(key []byte) []byte {
	for i, c := range key {
		if c == 0 {
			return key[:i]
		}
	}
	return key
}

// PartitionOf is the partition of the endpoints table that holds key's row.
func PartitionOf(key string, partitions int) int32 {
	return kafka.PartitionOf(string(PartitionKey([]byte(key))), partitions)
}

// Hasher places row keys as the aggregator does: murmur2 (kafka.Hasher) of
// PartitionKey. The group, and views of its table, look keys up with it.
func Hasher() hash.Hash32 { return kafka.PartitionHasher(PartitionKey) }

// endpointName makes an endpoint's name a key: a NUL would be taken for the
// start of a bucket key, so it becomes U+FFFD.
func endpointName(name string) string {
	if strings.IndexByte(name, 0) < 0 {
		return name
	}
	return strings.ReplaceAll(name, "\x00", "\uFFFD")
}

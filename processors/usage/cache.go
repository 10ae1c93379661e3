package usage

import (
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/codecs/activitypb"
)

// valueCache keeps recently counted clients decoded, so a busy client's
// value is not decoded from storage on every event. This member is the only
// writer of the partitions it owns, so a cached value equals the stored one
// until the next rebalance, when the whole cache is dropped.
type valueCache struct {
	mu      sync.Mutex
	total   int
	perPart int
	parts   map[int32]*simplelru.LRU[string, *activitypb.ClientUsage]
}

// newValueCache holds up to total values, split over the partitions owned.
func newValueCache(total int) *valueCache {
	return &valueCache{total: total, perPart: total, parts: make(map[int32]*simplelru.LRU[string, *activitypb.ClientUsage])}
}

func (c *valueCache) get(partition int32, key string) (*activitypb.ClientUsage, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.parts[partition]; p != nil {
		return p.Get(key)
	}
	return nil, false
}

func (c *valueCache) put(partition int32, key string, v *activitypb.ClientUsage) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.parts[partition]
	if p == nil {
		p, _ = simplelru.NewLRU[string, *activitypb.ClientUsage](c.perPart, nil)
		c.parts[partition] = p
	}
	p.Add(key, v)
}

// rebalanced drops everything: goka calls it before the new generation's
// partition processors start, after the old ones stopped.
func (c *valueCache) rebalanced(a goka.Assignment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.parts)
	c.perPart = c.total/max(len(a), 1) + 1
}

// remove drops key, e.g. when its row is deleted.
func (c *valueCache) remove(partition int32, key string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.parts[partition]; p != nil {
		p.Remove(key)
	}
}

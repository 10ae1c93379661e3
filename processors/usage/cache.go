package usage

import (
	"maps"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/lovoo/goka"

	"github.com/inarious/inarious/codecs/activitypb"
)

// valueCache keeps recently counted clients decoded, so a busy client's
// value is not decoded from storage on every event. This member is the only
// writer of the partitions it owns, so a cached value equals the stored one
// until the next rebalance, when the whole cache is dropped.
//
// Each partition has its own LRU and lock: a partition's events are counted
// on one goroutine, so partitions never wait for each other, and the map of
// partitions is replaced, never changed, so finding one takes no lock.
type valueCache struct {
	mu      sync.Mutex // orders replacements of parts
	total   int
	perPart int
	parts   atomic.Pointer[map[int32]*partitionCache]
}

type partitionCache struct {
	mu  sync.Mutex
	lru *simplelru.LRU[string, *activitypb.ClientUsage]
}

// newValueCache holds up to total values, split over the partitions owned.
func newValueCache(total int) *valueCache {
	c := &valueCache{total: total, perPart: total}
	c.parts.Store(&map[int32]*partitionCache{})
	return c
}

func (c *valueCache) partition(p int32) *partitionCache { return (*c.parts.Load())[p] }

func (c *valueCache) get(partition int32, key string) (*activitypb.ClientUsage, bool) {
	if c == nil {
		return nil, false
	}
	p := c.partition(partition)
	if p == nil {
		return nil, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lru.Get(key)
}

func (c *valueCache) put(partition int32, key string, v *activitypb.ClientUsage) {
	if c == nil {
		return
	}
	p := c.partition(partition)
	if p == nil {
		p = c.addPartition(partition)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lru.Add(key, v)
}

// addPartition returns partition's cache, made if no other goroutine made it.
func (c *valueCache) addPartition(partition int32) *partitionCache {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.parts.Load()
	if p := old[partition]; p != nil {
		return p
	}
	lru, _ := simplelru.NewLRU[string, *activitypb.ClientUsage](c.perPart, nil)
	p := &partitionCache{lru: lru}
	next := maps.Clone(old)
	next[partition] = p
	c.parts.Store(&next)
	return p
}

// rebalanced drops everything: goka calls it before the new generation's
// partition processors start, after the old ones stopped.
func (c *valueCache) rebalanced(a goka.Assignment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.parts.Store(&map[int32]*partitionCache{})
	c.perPart = c.total/max(len(a), 1) + 1
}

// remove drops key, e.g. when its row is deleted.
func (c *valueCache) remove(partition int32, key string) {
	if c == nil {
		return
	}
	if p := c.partition(partition); p != nil {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.lru.Remove(key)
	}
}

package quotas

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"

	"github.com/inarious/inarious/internal/kafka"
)

// Index holds every policy decoded, kept current by a goka view of Topic
// (Run), for reads on a hot path: the usage group's alert rules on a share
// of a quota look up a client's policy on every event they watch. A lookup
// is an atomic load and, once any client has a policy of its own, a
// sync.Map load; Table's reads decode the JSON each time.
type Index struct {
	log *slog.Logger
	cfg *kafka.Config // nil: filled by Put and Delete only

	// own holds the clients' own policies (Default aside) by client; a
	// deleted one stays as an entry without a policy, for its time.
	own      sync.Map // client → *indexed
	owners   atomic.Int64
	fallback atomic.Pointer[indexed] // Default's

	recovered *kafka.Latch
}

// indexed is one client's record: its policy (nil once deleted), the scope
// of each of its limits, and when it was written (Unix ns).
type indexed struct {
	policy *Policy
	scopes []string
	at     int64
}

// NewIndex is an empty index that Put and Delete fill (tests, benchmarks).
func NewIndex() *Index {
	ix := &Index{log: slog.Default(), recovered: kafka.NewLatch()}
	ix.recovered.Close()
	return ix
}

// NewIndexView follows Topic once Run runs (the topic must exist then).
func NewIndexView(cfg kafka.Config, log *slog.Logger) *Index {
	if log == nil {
		log = slog.Default()
	}
	return &Index{log: log, cfg: &cfg, recovered: kafka.NewLatch()}
}

// Run follows the topic until ctx ends, in a view held in memory.
func (ix *Index) Run(ctx context.Context) error {
	if ix.cfg == nil {
		<-ctx.Done()
		return nil
	}
	return ix.cfg.RunMemoryView(ctx, ix.log, Topic, new(Codec), ix.update, ix.recovered)
}

// WaitRecovered waits until the whole topic has been read, so that no
// event is judged without its client's policy.
func (ix *Index) WaitRecovered(ctx context.Context) error { return ix.recovered.Wait(ctx) }

// update is the view's callback. The index is the only copy kept: the
// view's storage is not written.
func (ix *Index) update(ctx goka.UpdateContext, _ storage.Storage, client string, value []byte) error {
	if value == nil {
		ix.Delete(client, ctx.Timestamp())
		return nil
	}
	v, err := new(Codec).Decode(value)
	if err != nil {
		ix.log.Warn("quota policy ignored: it does not decode", "client", client, "err", err)
		return nil
	}
	ix.Put(client, v.(*Policy), ctx.Timestamp())
	return nil
}

// Put makes p client's policy, written at at.
func (ix *Index) Put(client string, p *Policy, at time.Time) {
	if p.Client != client { // the key names the policy
		named := *p
		named.Client = client
		p = &named
	}
	e := &indexed{policy: p, scopes: make([]string, len(p.Limits)), at: unixNano(at)}
	for i, l := range p.Limits {
		e.scopes[i] = l.Scope()
	}
	ix.store(client, e)
}

// Delete removes client's policy, deleted at at.
func (ix *Index) Delete(client string, at time.Time) {
	ix.store(client, &indexed{at: unixNano(at)})
}

// unixNano is t in Unix ns, 0 for the zero time (a record without one).
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func (ix *Index) store(client string, e *indexed) {
	if client == Default {
		ix.fallback.Store(e)
		return
	}
	if _, loaded := ix.own.Swap(client, e); !loaded {
		ix.owners.Add(1)
	}
}

// InForce is the policy in force for a client (two words: it is passed
// by value on the hot path).
type InForce struct {
	e *indexed
	// Since is when it came into force for the client, Unix ns: when it
	// was written, or when the client's own policy was deleted (falling
	// back to Default), whichever is later.
	Since int64
}

// Policy is the client's own, else Default's; nil when neither exists.
func (p InForce) Policy() *Policy {
	if p.e == nil {
		return nil
	}
	return p.e.policy
}

// For is the policy in force for client.
func (ix *Index) For(client string) InForce {
	var own *indexed
	if ix.owners.Load() > 0 {
		if v, ok := ix.own.Load(client); ok {
			own = v.(*indexed)
		}
	}
	if own != nil && own.policy != nil {
		return InForce{e: own, Since: own.at}
	}
	d := ix.fallback.Load()
	if d == nil || d.policy == nil {
		return InForce{}
	}
	since := d.at
	if own != nil {
		since = max(since, own.at)
	}
	return InForce{e: d, Since: since}
}

// Limit is the count of the policy's limit of scope (Limit.Scope); false
// when the policy has none (or there is no policy).
func (p InForce) Limit(scope string) (uint64, bool) {
	if p.e == nil {
		return 0, false
	}
	for i, s := range p.e.scopes {
		if s == scope {
			return p.e.policy.Limits[i].Limit, true
		}
	}
	return 0, false
}

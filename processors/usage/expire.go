package usage

import (
	"context"
	"time"

	"github.com/lovoo/goka"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/tablestore"
)

// ControlTopic carries expiry records (activitypb.Expire) from each member's
// janitor to the usage group, keyed by client and partitioned like Users,
// so the row's own callback decides and deletes it.
const ControlTopic goka.Stream = "usage-control"

// DefaultClientRetention is how long a client may go unseen before its row
// is deleted.
const DefaultClientRetention = 400 * 24 * time.Hour

// WithClientRetention deletes the rows of clients not seen for d (by their
// last event time); 0 keeps them forever. Default DefaultClientRetention.
func WithClientRetention(d time.Duration) Option { return func(p *Processor) { p.clientRetention = d } }

// janitorInterval is how often a member scans its partitions for idle
// clients: a hundredth of the retention, between 100 ms and an hour.
func (p *Processor) janitorInterval() time.Duration {
	return min(max(p.clientRetention/100, 100*time.Millisecond), time.Hour)
}

// expire is the control topic's callback: it deletes the row if the client
// is still idle (not seen at or after the record's time; the janitor read
// an older copy of the row, or the record is replayed). The row's open
// buckets are final by then: they are emitted first, and Kafka's retention
// drops those already beyond it.
func (p *Processor) expire(ctx goka.Context, msg any) {
	e, _ := msg.(*activitypb.Expire)
	// Rows updated but not yet written first: the deletion must see the
	// client's last events and reach the changelog after their writes.
	rows := p.writes.Lock(ctx)
	rows.Unlock()
	rows.Flush()
	row, _ := ctx.Value().(*activitypb.ClientUsage)
	if e == nil || row == nil || lastSeen(row) >= e.GetIdleSinceUnixNano() {
		return
	}
	p.emitBuckets(ctx, ctx.Key(), row, row.GetOpenBuckets())
	p.cache.remove(ctx.Partition(), ctx.Key())
	ctx.Delete()
	p.expired.Add(1)
}

func lastSeen(row *activitypb.ClientUsage) int64 {
	if ls := row.GetLastSeen(); ls != nil {
		return ls.AsTime().UnixNano()
	}
	return 0
}

// IdleClients calls fn for each client in the partitions this member owns
// whose last event time is before cutoff. It reads local storage, which may
// be behind the changelog: the control callback checks again.
func (p *Processor) IdleClients(cutoff time.Time, fn func(client string)) error {
	limit := cutoff.UnixNano()
	return p.open.ReadAll(string(Table), func(st *tablestore.Tracked) error {
		it, err := st.Iterator()
		if err != nil {
			return err
		}
		defer it.Release()
		for it.Next() && !st.Closing() {
			v, err := it.Value()
			if err != nil {
				return err
			}
			if _, seen, err := codecs.UsageTotals(v); err == nil && seen < limit {
				fn(string(it.Key()))
			}
		}
		return it.Err()
	})
}

// janitor asks the group, through the control topic, to delete the rows of
// clients this member's partitions show idle, every janitorInterval.
func (p *Processor) janitor(ctx context.Context, em *goka.Emitter) {
	t := time.NewTicker(p.janitorInterval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cutoff := p.now().Add(-p.clientRetention)
		rec := &activitypb.Expire{IdleSinceUnixNano: cutoff.UnixNano()}
		var n int
		err := p.IdleClients(cutoff, func(client string) {
			if _, err := em.Emit(client, rec); err != nil {
				p.log.Warn("janitor: expiry record not sent", "client", client, "err", err)
				return
			}
			n++
		})
		if err != nil {
			p.log.Warn("janitor: scan failed", "err", err)
		}
		if n > 0 {
			p.log.Info("janitor: idle clients sent for expiry", "clients", n, "idle_since", cutoff)
		}
	}
}

// newJanitorEmitter is the janitor's producer of control records, placed
// by murmur2 like Users.
func (p *Processor) newJanitorEmitter(cfg kafka.Config) (*goka.Emitter, error) {
	cfg.ClientID += "-janitor"
	return goka.NewEmitter(cfg.Brokers, ControlTopic, new(codecs.Expire), cfg.EmitterOptions(p.log)...)
}

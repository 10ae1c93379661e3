package quotas

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"

	"github.com/inarious/inarious/internal/kafka"
)

// Table reads the policies from a goka view of Topic, the source of truth
// for every read, and writes them with a goka emitter.
type Table struct {
	view    *goka.View
	emitter *goka.Emitter
	log     *slog.Logger
}

// NewTable builds the view (in memory: the topic is small and read whole at
// start) and the emitter; Topic must exist (kafka.Config.EnsureTopics with
// TopicSpec). opts come after the view's own options.
func NewTable(kc kafka.Config, log *slog.Logger, opts ...goka.ViewOption) (*Table, error) {
	if log == nil {
		log = slog.Default()
	}
	vopts := append(kc.ViewOptions(log), goka.WithViewStorageBuilder(storage.MemoryBuilder()))
	v, err := goka.NewView(kc.Brokers, Topic, new(Codec), append(vopts, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("quotas view: %w", err)
	}
	em, err := goka.NewEmitter(kc.Brokers, goka.Stream(Topic), new(Codec), kc.EmitterOptions(log)...)
	if err != nil {
		return nil, fmt.Errorf("quotas emitter: %w", err)
	}
	return &Table{view: v, emitter: em, log: log}, nil
}

// Run keeps the view up to date until ctx ends.
func (t *Table) Run(ctx context.Context) error { return t.view.Run(ctx) }

// Recovered reports whether the view has read the whole topic and follows it.
func (t *Table) Recovered() bool { return t.view.CurrentState() == goka.ViewStateRunning }

// Goka is the view, for goka's debug pages.
func (t *Table) Goka() *goka.View { return t.view }

// Close flushes and closes the emitter.
func (t *Table) Close() error { return t.emitter.Finish() }

// Get is client's policy, nil when it has none.
func (t *Table) Get(client string) (*Policy, error) {
	v, err := t.view.Get(client)
	if err != nil || v == nil {
		return nil, err
	}
	return v.(*Policy), nil
}

// List is every policy, by client.
func (t *Table) List() ([]*Policy, error) {
	it, err := t.view.Iterator()
	if err != nil {
		return nil, err
	}
	defer it.Release()
	var out []*Policy
	for it.Next() {
		v, err := it.Value()
		if err != nil {
			return nil, fmt.Errorf("decode %q: %w", it.Key(), err)
		}
		if p, ok := v.(*Policy); ok {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *Policy) int { return strings.Compare(a.Client, b.Client) })
	return out, it.Err()
}

// visibleWithin bounds how long a write waits for this replica's view to
// show it, so that a GET after a PUT on the same replica reads the write.
const visibleWithin = 5 * time.Second

// Put writes p, stamped with the time now, and returns once Kafka has it
// and this replica's view shows it (or visibleWithin passed: the write
// stands and the view shows it once it catches up).
func (t *Table) Put(ctx context.Context, p *Policy) error {
	p.Updated = time.Now().UTC()
	if err := t.emit(ctx, p.Client, p); err != nil {
		return err
	}
	t.await(ctx, p.Client, func(got *Policy) bool { return got != nil && got.Updated.Equal(p.Updated) })
	return nil
}

// Delete removes client's policy (a tombstone), returning as Put does.
func (t *Table) Delete(ctx context.Context, client string) error {
	if err := t.emit(ctx, client, nil); err != nil {
		return err
	}
	t.await(ctx, client, func(got *Policy) bool { return got == nil })
	return nil
}

func (t *Table) emit(ctx context.Context, client string, p *Policy) error {
	var value any // nil: a tombstone; a nil *Policy would be encoded
	if p != nil {
		value = p
	}
	promise, err := t.emitter.Emit(client, value)
	if err != nil {
		return fmt.Errorf("write quota policy: %w", err)
	}
	done := make(chan error, 1)
	promise.Then(func(err error) { done <- err })
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("write quota policy: %w", err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// await polls the view until shown holds for client's policy.
func (t *Table) await(ctx context.Context, client string, shown func(*Policy) bool) {
	deadline := time.Now().Add(visibleWithin)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		p, err := t.Get(client)
		if err == nil && shown(p) {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.log.Warn("quota policy written, but this replica's view does not show it yet", "client", client, "err", err)
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

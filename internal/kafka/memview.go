package kafka

import (
	"context"
	"log/slog"
	"sync"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
)

// RunMemoryView follows table with a goka view held in memory until ctx
// ends, passing every record to update (which keeps what it needs: a small
// table read whole, decoded once). recovered is closed once the view has
// read the whole table.
func (c Config) RunMemoryView(ctx context.Context, log *slog.Logger, table goka.Table, codec goka.Codec, update goka.UpdateCallback, recovered *Latch) error {
	opts := append(c.ViewOptions(log),
		goka.WithViewStorageBuilder(storage.MemoryBuilder()),
		goka.WithViewCallback(update))
	v, err := goka.NewView(c.Brokers, table, codec, opts...)
	if err != nil {
		return err
	}
	go func() {
		select {
		case <-v.WaitRunning():
			recovered.Close()
		case <-ctx.Done():
		}
	}()
	return v.Run(ctx)
}

// Latch is closed once, and then stays closed: e.g. a view that has
// recovered.
type Latch struct {
	once sync.Once
	ch   chan struct{}
}

// NewLatch is open.
func NewLatch() *Latch { return &Latch{ch: make(chan struct{})} }

// Close closes l; again, nothing.
func (l *Latch) Close() { l.once.Do(func() { close(l.ch) }) }

// Closed is whether l is closed.
func (l *Latch) Closed() bool {
	select {
	case <-l.ch:
		return true
	default:
		return false
	}
}

// Wait waits until l is closed, or ctx ends.
func (l *Latch) Wait(ctx context.Context) error {
	select {
	case <-l.ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

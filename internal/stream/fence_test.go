package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/testutil"
)

// A fenced callback waits while the check fails and goes on once it
// passes; when its partition closes first, it writes nothing and fails its
// message's commit. Holding and resuming are logged once each.
func TestFenceAwait(t *testing.T) {
	var stale atomic.Bool
	var asked atomic.Int64
	logs := &testutil.LogBuffer{}
	f := NewFence(func() error {
		asked.Add(1)
		if stale.Load() {
			return errors.New("lease stale")
		}
		return nil
	}, "test table", slog.New(slog.NewTextHandler(logs, nil)))

	if !f.Await(&fakeContext{key: "a", run: t.Context()}) {
		t.Fatal("Await false with the check passing")
	}

	stale.Store(true)
	a := &fakeContext{key: "a", run: t.Context()}
	passed := make(chan bool, 1)
	go func() { passed <- f.Await(a) }()
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		return asked.Load() > 5, fmt.Sprintf("fence asked %d times", asked.Load())
	})
	select {
	case <-passed:
		t.Fatal("Await returned while the check failed")
	default:
	}
	stale.Store(false)
	if !<-passed || len(a.committed()) != 0 {
		t.Errorf("Await once the check passed: want true, no commit touched (commits %v)", a.committed())
	}

	stale.Store(true)
	run, closePartition := context.WithCancel(context.Background())
	b := &fakeContext{key: "b", run: run}
	go func() { passed <- f.Await(b) }()
	closePartition()
	if <-passed {
		t.Error("Await true for a partition closed while fenced")
	}
	if c := b.committed(); len(c) != 1 || c[0] == nil {
		t.Errorf("commits %v, want the message's commit failed", c)
	}
	if h, r := logs.Count("writes held: membership not confirmed"), logs.Count("membership confirmed, writing again"); h != 2 || r != 1 {
		t.Errorf("logged holding %d and resuming %d times, want 2 and 1 (two stale spells, one resumed)", h, r)
	}
}

// A nil fence, as a group without one has, always passes.
func TestNilFencePasses(t *testing.T) {
	var f *Fence
	if f.Err() != nil || !f.Await(&fakeContext{run: t.Context()}) {
		t.Error("nil fence did not pass")
	}
}

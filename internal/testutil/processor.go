package testutil

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/lovoo/goka"
)

// RunProcessor runs proc until the test ends (or stop is called) and
// returns once it has recovered. stop cancels it and waits for it to return;
// a processor that fails is an error of the test.
func RunProcessor(t testing.TB, proc *goka.Processor) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := proc.Run(ctx); err != nil {
			t.Errorf("processor: %v", err)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	Eventually(t, 10*time.Second, func() (bool, string) { return proc.Recovered(), "processor not running" })
	return stop
}

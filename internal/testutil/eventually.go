// Package testutil holds helpers shared by the tests of several packages.
package testutil

import (
	"testing"
	"time"
)

// PollInterval is how often Eventually checks its condition: short, so
// tests wait little past the moment the condition starts to hold.
const PollInterval = 5 * time.Millisecond

// Eventually calls cond every PollInterval until it reports true and
// returns how long that took. cond's message says what is awaited and what
// it saw; after timeout the test fails with the last message. Call it from
// the test's goroutine: it calls t.Fatalf, and cond runs on that goroutine
// too, so cond may itself fail the test at once (e.g. on an over-count).
func Eventually(t testing.TB, timeout time.Duration, cond func() (ok bool, msg string)) time.Duration {
	t.Helper()
	return EventuallyEvery(t, timeout, PollInterval, cond)
}

// EventuallyEvery is Eventually polling every interval, for conditions that
// are costly to check or that checking disturbs.
func EventuallyEvery(t testing.TB, timeout, interval time.Duration, cond func() (ok bool, msg string)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if ok, _ := cond(); ok {
			return time.Since(start)
		}
		select {
		case <-deadline.C:
			// One last look: the condition may have come true while we slept.
			ok, msg := cond()
			if ok {
				return time.Since(start)
			}
			t.Fatalf("timed out after %v: %s", timeout, msg)
			return time.Since(start)
		case <-tick.C:
		}
	}
}

package loadgen

import (
	"context"
	"time"
)

// slot is one scheduled request: its sequence number and, in open loop,
// when it was meant to be sent.
type slot struct {
	seq      int64
	intended time.Time
}

// IntendedTime is when request seq (from 0) is due at rate requests/s from start.
// Computed from start rather than by adding intervals, so it does not drift.
func IntendedTime(start time.Time, rate float64, seq int64) time.Time {
	return start.Add(time.Duration(float64(seq) * float64(time.Second) / rate))
}

// schedule sends slot i at IntendedTime(start, rate, i) into out, until n slots
// (n > 0) or the first slot due at or after deadline, then closes out. A slow
// consumer delays the send, never the intended time: once consumers catch up,
// late slots go out at once and their latency, measured from the intended
// time, includes the wait. Without that, a stalled server would be sampled
// less exactly when it is slow (coordinated omission).
func schedule(ctx context.Context, start time.Time, rate float64, n int64, deadline time.Time, out chan<- slot) {
	defer close(out)
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for i := int64(0); n <= 0 || i < n; i++ {
		t := IntendedTime(start, rate, i)
		if !t.Before(deadline) {
			return
		}
		if wait := time.Until(t); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		}
		select {
		case out <- slot{seq: i, intended: t}:
		case <-ctx.Done():
			return
		}
	}
}

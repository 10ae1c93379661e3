package app

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Parts stop in the reverse order of their start, each after the one
// started after it has ended; a part that ends on its own is a failure.
func TestPartsStopInReverseAndReportAnEarlyEnd(t *testing.T) {
	var mu sync.Mutex
	var stopped []string
	until := func(name string) part {
		return part{name, func(ctx context.Context) error {
			<-ctx.Done()
			time.Sleep(time.Millisecond) // a slow stop must still hold up the next
			mu.Lock()
			defer mu.Unlock()
			stopped = append(stopped, name)
			return ctx.Err()
		}}
	}
	s := start(t.Context(), []part{until("view"), until("windows"), until("dashboard")})
	select {
	case err := <-s.failed:
		t.Fatalf("a part failed while running: %v", err)
	default:
	}
	if !s.stop(5 * time.Second) {
		t.Fatal("the parts did not stop")
	}
	if want := []string{"dashboard", "windows", "view"}; !slices.Equal(stopped, want) {
		t.Errorf("stopped %v, want %v", stopped, want)
	}

	boom := errors.New("broker gone")
	s = start(t.Context(), []part{until("view"), {"tracker", func(context.Context) error { return boom }}, {"hub", func(context.Context) error { return nil }}})
	err := <-s.failed
	if !errors.Is(err, boom) && !strings.Contains(err.Error(), "hub stopped") {
		t.Errorf("failed = %v, want the tracker's error or the hub's early return", err)
	}
	if !s.stop(5 * time.Second) {
		t.Fatal("the parts did not stop after a failure")
	}
}

package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/dashboard"
	"github.com/inarious/inarious/internal/routing"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/internal/top"
)

// fakeWorkers answers Top and Get as the workers would, or fails.
type fakeWorkers struct {
	mu   sync.Mutex
	top  routing.Top
	err  error
	asks int
}

func (f *fakeWorkers) set(t routing.Top, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.top, f.err = t, err
}

func (f *fakeWorkers) Top(_ *top.Key, limit int) (routing.Top, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asks++
	t := f.top
	t.Rows = t.Rows[:min(limit, len(t.Rows))]
	return t, f.err
}

func (f *fakeWorkers) Get(client string) (*activitypb.ClientUsage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.top.Rows {
		if r.Client == client {
			return &activitypb.ClientUsage{Client: client, Total: r.Total}, nil
		}
	}
	return nil, nil
}

func topOf(totals ...uint64) routing.Top {
	t := routing.Top{Clients: len(totals)}
	for i, n := range totals {
		t.Rows = append(t.Rows, top.Row{Client: fmt.Sprintf("c%d", i), Total: n})
		t.Requests += n
	}
	return t
}

// The workers-mode dashboard source reads once per refresh, changes version
// only when the workers' answer does, and counts rises of the sum of totals
// only (an expiry or a failed fetch never makes the event count go back).
func TestRoutedDashboardFollowsTheWorkers(t *testing.T) {
	w := &fakeWorkers{}
	w.set(topOf(5, 3), nil)
	d := newRoutedDashboard(w, 10, nil)
	if d.Recovered() {
		t.Fatal("recovered before any fetch")
	}
	d.Refresh()
	v1 := d.Version()
	if !d.Recovered() || d.Clients() != 2 || d.Requests() != 8 || d.Increments() != 8 || len(d.Page(nil, 10)) != 2 {
		t.Fatalf("after a fetch: recovered %v clients %d requests %d increments %d", d.Recovered(), d.Clients(), d.Requests(), d.Increments())
	}
	d.Refresh()
	if d.Version() != v1 {
		t.Error("version changed although the workers' answer did not")
	}
	w.set(topOf(7, 3), nil)
	d.Refresh()
	if d.Version() == v1 || d.Increments() != 10 {
		t.Errorf("after 2 more calls: version %d (was %d), increments %d, want a new version and 10", d.Version(), v1, d.Increments())
	}
	w.set(routing.Top{}, errors.New("rebalancing"))
	d.Refresh()
	if d.Recovered() || d.Increments() != 10 {
		t.Errorf("after a failed fetch: recovered %v increments %d, want false and 10", d.Recovered(), d.Increments())
	}
	w.set(topOf(7), nil) // a client expired
	d.Refresh()
	if !d.Recovered() || d.Increments() != 10 || d.Requests() != 7 {
		t.Errorf("after an expiry: recovered %v increments %d requests %d, want true, 10, 7", d.Recovered(), d.Increments(), d.Requests())
	}
}

// The hub, fed by the workers, shows their top clients to a subscriber.
func TestDashboardHubReadsTheWorkers(t *testing.T) {
	w := &fakeWorkers{}
	w.set(topOf(9, 4, 1), nil)
	hub := dashboard.NewHub(nil)
	ctx := t.Context()
	go hub.Run(ctx, newRoutedDashboard(w, dashboard.TopClients, nil))
	ch, cancel := hub.Subscribe()
	defer cancel()
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		select {
		case msg := <-ch:
			var s dashboard.Snapshot
			if err := json.Unmarshal(msg, &s); err != nil {
				return false, err.Error()
			}
			if s.Recovered && s.Clients == 3 && s.Requests == 14 && len(s.Top) == 3 && s.Top[0].Client == "c0" {
				return true, ""
			}
			return false, fmt.Sprintf("snapshot %s", msg)
		default:
			return false, "no snapshot"
		}
	})
}

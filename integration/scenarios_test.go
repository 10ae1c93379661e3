package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Scenario 1: api and worker processes; N requests from K clients; exact
// counts per client and endpoint in /usage/{client}. Part of the traffic is
// sent before any worker exists: the API and workers may start in any order.
func TestEndToEnd(t *testing.T) {
	needKafka(t)
	resetKafka(t)
	const n, k, early = 2000, 20, 200
	dir := t.TempDir()
	tr := newTraffic(t, k)
	gw := newGroupWatcher(t)

	a := startAPI(t, filepath.Join(dir, "api"))
	ready := tr.waitReady(a, 60*time.Second)
	t.Logf("api ready %v after start", time.Since(a.started).Round(time.Millisecond))
	_ = ready

	// Events produced while no worker runs yet.
	tr.burst(a, early, 4)

	w := startWorker(t, "worker-1", filepath.Join(dir, "w1"))
	_, join := gw.waitUntil(w.started, 60*time.Second, "worker-1 to own all partitions", func(g groupState) bool { return g.covered("worker-1") })

	took := tr.burst(a, n, 8)
	exact := tr.waitCounts(a, 60*time.Second)
	rate := float64(n) / took.Seconds()
	report(t, "requests=%d clients=%d early_before_worker=%d send=%s rate=%.0f/s worker_join=%s counts_exact_after_last_request=%s",
		n+early, k, early, ms(took), rate, ms(join), ms(exact))

	_, rd, err := tr.readyz(a)
	if err != nil {
		t.Fatal(err)
	}
	if rd.Events.Dropped != 0 || rd.Events.Failed != 0 {
		t.Errorf("publisher dropped %d, failed %d events", rd.Events.Dropped, rd.Events.Failed)
	}
}

// Scenario 2: scale-out. Workers 2 and 3 join the group while events flow;
// the partitions of Users are split among them; one stops gracefully and
// the others take its partitions; counts stay exact.
func TestScaleOut(t *testing.T) {
	needKafka(t)
	resetKafka(t)
	dir := t.TempDir()
	tr := newTraffic(t, 20)
	gw := newGroupWatcher(t)
	a := startAPI(t, filepath.Join(dir, "api"))
	tr.waitReady(a, 60*time.Second)
	w1 := startWorker(t, "worker-1", filepath.Join(dir, "w1"))
	gw.waitUntil(w1.started, 60*time.Second, "worker-1 to own all partitions", func(g groupState) bool { return g.covered("worker-1") })

	l := tr.background(a, 4*time.Millisecond)
	defer l.halt(t)
	waitFor(t, 10*time.Second, "traffic to flow", func() bool { return l.sent.Load() > 200 })

	w2 := startWorker(t, "worker-2", filepath.Join(dir, "w2"))
	g2, join2 := gw.waitUntil(w2.started, 90*time.Second, "2 members owning all partitions", func(g groupState) bool { return g.covered("worker-1", "worker-2") })
	t.Logf("after worker-2 joined (%v): %v", join2.Round(time.Millisecond), g2)

	w3 := startWorker(t, "worker-3", filepath.Join(dir, "w3"))
	g3, join3 := gw.waitUntil(w3.started, 90*time.Second, "3 members owning all partitions", func(g groupState) bool { return g.covered("worker-1", "worker-2", "worker-3") })
	t.Logf("after worker-3 joined (%v): %v", join3.Round(time.Millisecond), g3)
	for m, parts := range g3.Members {
		if len(parts) != partitions/3 {
			t.Errorf("%s owns %v; want %d of %d partitions", m, parts, partitions/3, partitions)
		}
	}

	// Counts keep progressing on every worker's partitions.
	waitFor(t, 30*time.Second, "traffic after the scale-out", func() bool { return l.sent.Load() > 1500 })

	t0 := time.Now()
	exit2, clean := w2.stop(30 * time.Second)
	if !clean {
		t.Errorf("worker-2 did not exit after SIGTERM")
	}
	_, shrink := gw.waitUntil(t0, 30*time.Second, "worker-2 to leave the group", func(g groupState) bool {
		_, in := g.Members["worker-2"]
		return !in && len(g.Members) == 2
	})
	g4, takeover := gw.waitUntil(t0, 90*time.Second, "worker-1 and worker-3 to own all partitions", func(g groupState) bool { return g.covered("worker-1", "worker-3") })
	t.Logf("after worker-2 stopped: %v", g4)
	waitFor(t, 30*time.Second, "traffic after worker-2 left", func() bool { return l.sent.Load() > 2500 })
	sent := l.halt(t)
	exact := tr.waitCounts(a, 60*time.Second)

	var processed []string
	p2, _, _, _ := workerStats(w2)
	for _, w := range []*proc{w1, w3} {
		w.stop(30 * time.Second)
	}
	p1, r1, _, _ := workerStats(w1)
	p3, r3, _, _ := workerStats(w3)
	for i, p := range []uint64{p1, p2, p3} {
		processed = append(processed, fmt.Sprintf("w%d=%d", i+1, p))
		if p == 0 {
			t.Errorf("worker-%d processed no events", i+1)
		}
	}
	report(t, "partitions=%d rebalance_join_2nd=%s rebalance_join_3rd=%s graceful_stop_exit=%s leave_seen=%s partitions_reassigned=%s background_requests=%d counts_exact_after_stop=%s processed=%s replays_skipped=%d",
		partitions, ms(join2), ms(join3), ms(exit2), ms(shrink), ms(takeover), sent, ms(exact), strings.Join(processed, ","), r1+r3)
}

// Scenario 3 (issue 7): kill -9 a worker mid-stream, repeatedly, and restart
// it with its storage: a peer takes over after the session timeout, replayed
// events are skipped, and every client's count equals the events produced.
func TestCrashTakeover(t *testing.T) {
	needKafka(t)
	resetKafka(t)
	dir := t.TempDir()
	tr := newTraffic(t, 20)
	gw := newGroupWatcher(t)
	a := startAPI(t, filepath.Join(dir, "api"))
	tr.waitReady(a, 60*time.Second)
	workers := map[string]*proc{
		"worker-1": startWorker(t, "worker-1", filepath.Join(dir, "w1")),
		"worker-2": startWorker(t, "worker-2", filepath.Join(dir, "w2")),
	}
	gw.waitUntil(time.Now(), 90*time.Second, "2 members owning all partitions", func(g groupState) bool { return g.covered("worker-1", "worker-2") })

	l := tr.background(a, 4*time.Millisecond)
	defer l.halt(t)
	var assigns, catchups, rejoins []time.Duration
	victims := []string{"worker-2", "worker-1", "worker-2"}
	for i, victim := range victims {
		peer := "worker-1"
		if victim == "worker-1" {
			peer = "worker-2"
		}
		// Mid-stream: the victim is busy counting its share.
		floor := l.sent.Load() + 300
		waitFor(t, 30*time.Second, "traffic before the kill", func() bool { return l.sent.Load() > floor })
		g := gw.describe()
		owned := g.Members[victim]
		want := tr.snapshot()
		tKill := time.Now()
		workers[victim].kill()
		_, assign := gw.waitUntil(tKill, 60*time.Second, peer+" to own all partitions", func(g groupState) bool { return g.covered(peer) })
		// Every event sent before the kill is counted, including those of
		// the victim's partitions that it had not processed or committed.
		tr.waitCountsOf(a, want, true, 60*time.Second)
		catchup := time.Since(tKill)
		t.Logf("kill %d: %s (owned %v, clients %v) killed; %s owns all after %v; pre-kill events counted after %v",
			i+1, victim, owned, tr.clientsOn(owned), peer, assign.Round(time.Millisecond), catchup.Round(time.Millisecond))

		tStart := time.Now()
		workers[victim] = startWorker(t, victim, filepath.Join(dir, victim[len(victim)-2:]))
		_, rejoin := gw.waitUntil(tStart, 90*time.Second, "the restarted worker to get its share", func(g groupState) bool { return g.covered("worker-1", "worker-2") })
		assigns, catchups, rejoins = append(assigns, assign), append(catchups, catchup), append(rejoins, rejoin)
	}
	sent := l.halt(t)
	exact := tr.waitCounts(a, 60*time.Second)
	var replays uint64
	for _, w := range workers {
		w.stop(30 * time.Second)
		_, r, _, _ := workerStats(w)
		replays += r
	}
	report(t, "kills=%d session_timeout=10s(sarama default) takeover_assigned=%s takeover_counts_caught_up=%s restart_rejoin=%s background_requests=%d count_error=0 counts_exact_after_stop=%s replays_skipped_by_last_instances=%d",
		len(victims), msList(assigns), msList(catchups), msList(rejoins), sent, ms(exact), replays)
}

func msList(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, ms(d))
	}
	return strings.Join(s, ",")
}

package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"

	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/processors/usage"
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
	tr.waitReady(a, 60*time.Second)
	t.Logf("api ready %v after start", time.Since(a.started).Round(time.Millisecond))

	// Events produced while no worker runs yet.
	tr.burst(a, early, 4)

	w := startWorker(t, "worker-1", filepath.Join(dir, "w1"))
	join := gw.waitSoleOwner(w.started, "worker-1")

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
	gw.waitSoleOwner(w1.started, "worker-1")

	l := tr.background(a, 4*time.Millisecond)
	defer l.halt(t)
	l.waitSent(t, 10*time.Second, 200, "traffic to flow")

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
	l.waitSent(t, 30*time.Second, 1500, "traffic after the scale-out")

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
	l.waitSent(t, 30*time.Second, 2500, "traffic after worker-2 left")
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
	// Events keyed by the server's hostname are re-keyed through the usage
	// group's loopback: the kills must not lose or double-count them either.
	orig := tr.originalProducer(10*time.Millisecond, []string{"10.200.0.1", "10.200.0.2", "10.200.0.3"})
	defer orig.halt(t)
	// Another service's batches on POST /events, each sent twice and again
	// later: through the dedupe stage, each event counts once.
	ingestClients := []string{"ingest-1", "ingest-2", "ingest-3", "ingest-4"}
	ingest := tr.ingestProducer(a, 20*time.Millisecond, ingestClients)
	defer ingest.halt(t)
	var assigns, catchups, rejoins []time.Duration
	victims := []string{"worker-2", "worker-1", "worker-2"}
	for i, victim := range victims {
		peer := "worker-1"
		if victim == "worker-1" {
			peer = "worker-2"
		}
		// Mid-stream: the victim is busy counting its share.
		floor := l.sent.Load() + 300
		l.waitSent(t, 30*time.Second, floor, "traffic before the kill")
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
	rekeyedSent := orig.halt(t)
	ingested := ingest.halt(t)
	exact := tr.waitCounts(a, 60*time.Second)
	// The minute buckets went through the same kills: they sum to the same counts.
	var clients []string
	for c := range tr.snapshot() {
		clients = append(clients, c)
	}
	windowsExact := tr.waitWindowsExact(a, clients, 60*time.Second)
	// The endpoints group read the same events through the same kills: its
	// calls, classes and sketches agree with the usage table's.
	endpointsExact := tr.waitEndpointsExact(a, append(simulatedEndpoints(), ingestEndpoint), 60*time.Second)
	var replays uint64
	for _, w := range workers {
		w.stop(30 * time.Second)
		_, r, _, _ := workerStats(w)
		replays += r
	}
	report(t, "kills=%d takeover_assigned=%s takeover_counts_caught_up=%s restart_rejoin=%s background_requests=%d original_producer_events=%d ingested_events=%d (each posted 2-3 times) count_error=0 counts_exact_after_stop=%s window_sums_exact_after=%s endpoints_exact_after=%s replays_skipped_by_last_instances=%d",
		len(victims), msList(assigns), msList(catchups), msList(rejoins), sent, rekeyedSent, ingested, ms(exact), ms(windowsExact), ms(endpointsExact), replays)
}

func msList(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, ms(d))
	}
	return strings.Join(s, ",")
}

// Scenario 4: a worker restarted with its local storage is ready without
// replaying the changelog; with its storage wiped it rebuilds the table from
// the changelog. Counts are exact both ways.
func TestRestartWarmAndCold(t *testing.T) {
	needKafka(t)
	resetKafka(t)
	const n = 20000
	dir := t.TempDir()
	wdir := filepath.Join(dir, "w1")
	tr := newTraffic(t, 20)
	gw := newGroupWatcher(t)
	a := startAPI(t, filepath.Join(dir, "api"))
	tr.waitReady(a, 60*time.Second)
	w := startWorker(t, "worker-1", wdir)
	gw.waitSoleOwner(w.started, "worker-1")
	tr.burst(a, n, 8)
	tr.waitCounts(a, 120*time.Second)
	changelog := topicRecords(t, tableTopic)

	// restart stops the worker, sends one event per client while none runs,
	// starts it again and measures until those events are counted.
	restart := func(wipe bool) (ready, assigned time.Duration) {
		if _, clean := w.stop(30 * time.Second); !clean {
			t.Fatalf("worker did not stop on SIGTERM")
		}
		if wipe {
			if err := os.RemoveAll(wdir); err != nil {
				t.Fatal(err)
			}
		}
		tr.probe(a)
		w = startWorker(t, "worker-1", wdir)
		assigned = gw.waitSoleOwner(w.started, "worker-1")
		tr.waitCounts(a, 120*time.Second)
		return time.Since(w.started), assigned
	}
	warm, warmJoin := restart(false)
	cold, coldJoin := restart(true)
	t.Logf("changelog %s: %d records; warm restart ready after %v (group joined %v), cold after %v (joined %v)",
		tableTopic, changelog, warm.Round(time.Millisecond), warmJoin.Round(time.Millisecond), cold.Round(time.Millisecond), coldJoin.Round(time.Millisecond))
	report(t, "events=%d changelog_records=%d restart_to_counting_warm=%s restart_to_counting_cold=%s group_join_warm=%s group_join_cold=%s counts=exact",
		n, changelog, ms(warm), ms(cold), ms(warmJoin), ms(coldJoin))
}

// Scenario 5: the broker stops and comes back. The API keeps answering
// quickly (users CRUD, usage reads), /readyz reports the outage, both
// processes reconnect on their own, and every event accepted during the
// outage is delivered and counted.
func TestBrokerOutage(t *testing.T) {
	needKafka(t)
	if _, _, reason := kafkaScript(); reason != "" {
		t.Skipf("the broker cannot be restarted by the test: %s", reason)
	}
	resetKafka(t)
	dir := t.TempDir()
	tr := newTraffic(t, 20)
	gw := newGroupWatcher(t)
	a := startAPI(t, filepath.Join(dir, "api"))
	tr.waitReady(a, 60*time.Second)
	w := startWorker(t, "worker-1", filepath.Join(dir, "w1"))
	gw.waitSoleOwner(w.started, "worker-1")
	tr.burst(a, 500, 8)
	tr.waitCounts(a, 60*time.Second)
	_, before, err := tr.readyz(a)
	if err != nil {
		t.Fatal(err)
	}

	// Whatever happens below, the next test needs the broker back.
	brokerDown := false
	t.Cleanup(func() {
		if brokerDown {
			if out, err := kafkaCtl(t, "start"); err != nil {
				t.Errorf("restarting the broker: %v\n%s", err, out)
			}
		}
	})
	t.Logf("committed before the outage: %v", committed(t))
	tStop := time.Now()
	brokerDown = true
	if out, err := kafkaCtl(t, "stop"); err != nil {
		t.Fatalf("kafka.sh stop: %v\n%s", err, out)
	}
	stopTook := time.Since(tStop)

	// During the outage (held for outageFor): users CRUD and usage reads,
	// paced by a ticker, each answering fast.
	const outageFor = 10 * time.Second
	var worst time.Duration
	check := func(what string, code int, lat time.Duration, err error, ok ...int) {
		t.Helper()
		if err != nil {
			t.Fatalf("during the outage, %s: %v", what, err)
		}
		if lat > worst {
			worst = lat
		}
		if lat > time.Second {
			t.Errorf("during the outage, %s took %v", what, lat)
		}
		for _, c := range ok {
			if code == c {
				return
			}
		}
		t.Errorf("during the outage, %s: status %d, want %v", what, code, ok)
	}
	sentBefore := tr.sent()
	var degradedAfter time.Duration
	tick := time.NewTicker(10 * time.Millisecond)
	for i := 0; time.Since(tStop) < outageFor; i++ {
		<-tick.C
		client := tr.clients[i%len(tr.clients)]
		switch i % 3 {
		case 0:
			body := fmt.Sprintf(`{"name":"user %d","email":"u%d@example.com"}`, i, i)
			code, resp, lat, err := tr.do(a, "POST", "/users", client, body, "POST /users")
			check("POST /users", code, lat, err, 201)
			var u struct {
				ID string `json:"id"`
			}
			if code == 201 {
				if err := json.Unmarshal(resp, &u); err != nil || u.ID == "" {
					t.Fatalf("POST /users answered %s", resp)
				}
				code, _, lat, err = tr.do(a, "GET", "/users/"+u.ID, client, "", "GET /users/{id}")
				check("GET /users/{id}", code, lat, err, 200)
			}
		case 1:
			code, _, lat, err := tr.do(a, "GET", "/users?limit=5", client, "", "GET /users")
			check("GET /users", code, lat, err, 200)
		case 2:
			code, _, lat, err := tr.do(a, "GET", "/usage/"+client, client, "", "GET /usage/{client}")
			check("GET /usage/{client}", code, lat, err, 200)
		}
		if degradedAfter == 0 && i%20 == 0 {
			code, rd, err := tr.readyz(a)
			if err == nil && (code == 503 || !rd.EmitterOK) {
				degradedAfter = time.Since(tStop)
			}
		}
	}
	tick.Stop()
	outageRequests := tr.sent() - sentBefore
	if degradedAfter == 0 {
		t.Errorf("/readyz did not report the outage within %v", outageFor)
	}
	code, during, err := tr.readyz(a)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("during the outage: /readyz %d %+v", code, during)
	if !w.running() {
		t.Fatalf("the worker exited during the outage: %v", w.exitErr())
	}
	// franz-go (the default producer) holds undelivered records for up to
	// its delivery timeout and the publisher re-queues what fails (sarama
	// fails sooner): either way some events must have waited for the broker.
	if during.Events.Retried == 0 && during.Events.InFlight == 0 {
		t.Errorf("no event was held for the broker or went back for redelivery: the outage was too short to test it")
	}
	outageLen := time.Since(tStop)

	tStart := time.Now()
	if out, err := kafkaCtl(t, "start"); err != nil {
		t.Fatalf("kafka.sh start: %v\n%s", err, out)
	}
	brokerDown = false
	startTook := time.Since(tStart)
	t.Logf("committed after the broker restart: %v", committed(t))
	recon := tr.waitReady(a, 120*time.Second)
	if !w.running() {
		t.Fatalf("the worker exited during the outage: %v", w.exitErr())
	}
	tr.waitCounts(a, 120*time.Second)
	counted := time.Since(tStart)
	tr.burst(a, 500, 8)
	after := tr.waitCounts(a, 60*time.Second)
	_, end, err := tr.readyz(a)
	if err != nil {
		t.Fatal(err)
	}
	if end.Events.Dropped != 0 || end.Events.Failed != 0 {
		t.Errorf("publisher dropped %d, failed %d events", end.Events.Dropped, end.Events.Failed)
	}
	waitRecords(t, tr)
	report(t, "broker_stop=%s outage=%s requests_during_outage=%d worst_latency=%s readyz_degraded_after=%s events_accepted_during_outage=%d retried=%d broker_start=%s api_ready_after_broker_up=%s all_counted_after_broker_up=%s delivered_total=%d dropped=0 failed=0 counts_exact_after_more=%s",
		ms(stopTook), ms(outageLen), outageRequests, ms(worst), ms(degradedAfter), during.Events.Accepted-before.Events.Accepted,
		end.Events.Retried, ms(startTook), ms(recon), ms(counted-startTook), end.Events.Delivered, ms(after))
}

// Scenario 6: an outside client, Kafka's own console consumer, reads the
// activity events from Users: one record per API response, keyed by client.
func TestConsoleConsumerReadsEvents(t *testing.T) {
	needKafka(t)
	resetKafka(t)
	dir := t.TempDir()
	tr := newTraffic(t, 20)
	a := startAPI(t, filepath.Join(dir, "api"))
	tr.waitReady(a, 60*time.Second)
	tr.burst(a, 1000, 8)
	records := waitRecords(t, tr)
	a.stop(30 * time.Second) // no more events from here on

	t0 := time.Now()
	stdout, stderr, err := runClass(t, 120*time.Second, "", "org.apache.kafka.tools.consumer.ConsoleConsumer",
		"--bootstrap-server", strings.Join(brokers, ","), "--topic", usersTopic, "--from-beginning",
		"--max-messages", fmt.Sprint(records), "--timeout-ms", "30000",
		"--property", "print.key=true", "--property", "print.value=false")
	took := time.Since(t0)
	if err != nil {
		t.Fatalf("console consumer: %v\n%s", err, clip(stderr))
	}
	if !strings.Contains(stderr, fmt.Sprintf("Processed a total of %d messages", records)) {
		t.Errorf("console consumer did not process %d messages: %s", records, clip(stderr))
	}
	byKey := map[string]int64{}
	var lines int64
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		byKey[line]++
		lines++
	}
	if lines != records {
		t.Errorf("console consumer printed %d records, want %d", lines, records)
	}
	var fromClients int64
	for client, eps := range tr.snapshot() {
		var n int64
		for _, v := range eps {
			n += int64(v)
		}
		fromClients += n
		if byKey[client] != n {
			t.Errorf("console consumer saw %d records keyed %s, want %d", byKey[client], client, n)
		}
	}
	// The test's own reads (/readyz) came straight from 127.0.0.1.
	if own := tr.responses.Load() - fromClients; byKey["127.0.0.1"] != own {
		t.Errorf("console consumer saw %d records keyed 127.0.0.1, want %d", byKey["127.0.0.1"], own)
	}
	report(t, "records_in_Users=%d console_consumer_read=%d keys=%d console_consumer_run=%s", records, lines, len(byKey), ms(took))
}

// Scenario 7 (issue 7): poison records written to Users by outside clients
// (garbage bytes, an event without a client, a key that is not the event's
// client, a console-producer text line) land in Users.deadletter with the
// reason, source partition and source offset headers; the worker keeps
// counting good events exactly.
func TestPoisonEventsDeadLettered(t *testing.T) {
	needKafka(t)
	resetKafka(t)
	dir := t.TempDir()
	tr := newTraffic(t, 20)
	gw := newGroupWatcher(t)
	a := startAPI(t, filepath.Join(dir, "api"))
	tr.waitReady(a, 60*time.Second)
	w := startWorker(t, "worker-1", filepath.Join(dir, "w1"))
	gw.waitSoleOwner(w.started, "worker-1")
	tr.burst(a, 300, 8)
	tr.waitCounts(a, 60*time.Second)

	type poison struct {
		key       string
		value     []byte
		reason    string // prefix of the expected reason header
		partition int32
		offset    int64
	}
	noClient, err := proto.Marshal(&activitypb.BackendApiActivity{Endpoint: "/healthz", HttpMethod: "GET", Route: "/healthz"})
	if err != nil {
		t.Fatal(err)
	}
	otherClient, err := proto.Marshal(&activitypb.BackendApiActivity{Endpoint: "/healthz", HttpMethod: "GET", Route: "/healthz", Client: "10.9.9.9"})
	if err != nil {
		t.Fatal(err)
	}
	poisons := []*poison{
		{key: tr.clients[0], value: []byte{0xff, 0xff, 0xff, 0xff, 0xff}, reason: "undecodable"},
		{key: "anonymous", value: noClient, reason: "no client"},
	}
	sc := saramaConfig()
	sc.Producer.Return.Successes = true
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Partitioner = sarama.NewCustomHashPartitioner(kafka.Hasher)
	prod, err := sarama.NewSyncProducer(brokers, sc)
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	t0 := time.Now()
	for _, p := range poisons {
		p.partition, p.offset, err = prod.SendMessage(&sarama.ProducerMessage{Topic: usersTopic, Key: sarama.StringEncoder(p.key), Value: sarama.ByteEncoder(p.value)})
		if err != nil {
			t.Fatalf("produce poison: %v", err)
		}
	}
	// Keyed by another client: not poison, it is re-keyed and counted.
	if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: usersTopic, Key: sarama.StringEncoder(tr.clients[1]), Value: sarama.ByteEncoder(otherClient)}); err != nil {
		t.Fatalf("produce mis-keyed event: %v", err)
	}
	prod.Close()
	// Kafka's console producer, keyed "console", a line of text.
	const line = "this is not an activity event"
	if _, stderr, err := runClass(t, 60*time.Second, "console|"+line+"\n", "org.apache.kafka.tools.ConsoleProducer",
		"--bootstrap-server", strings.Join(brokers, ","), "--topic", usersTopic,
		"--property", "parse.key=true", "--property", "key.separator=|"); err != nil {
		t.Fatalf("console producer: %v\n%s", err, clip(stderr))
	}
	poisons = append(poisons, &poison{key: "console", value: []byte(line), partition: -1, offset: -1})

	// Good traffic goes on around the poison.
	tr.burst(a, 300, 8)
	dead := readTopic(t, deadLetterTopic, len(poisons), 60*time.Second)
	deadLettered := time.Since(t0)
	byKey := map[string]*sarama.ConsumerMessage{}
	for _, m := range dead {
		byKey[string(m.Key)] = m
	}
	for _, p := range poisons {
		m := byKey[p.key]
		if m == nil {
			t.Errorf("poison keyed %q is not in %s", p.key, deadLetterTopic)
			continue
		}
		h := map[string]string{}
		for _, rh := range m.Headers {
			h[string(rh.Key)] = string(rh.Value)
		}
		if !bytes.Equal(m.Value, p.value) {
			t.Errorf("dead letter %q: value %q, want the original %q", p.key, m.Value, p.value)
		}
		if h[usage.HeaderReason] == "" || !strings.HasPrefix(h[usage.HeaderReason], p.reason) {
			t.Errorf("dead letter %q: reason %q, want %q…", p.key, h[usage.HeaderReason], p.reason)
		}
		wantPart, wantOff := fmt.Sprint(p.partition), fmt.Sprint(p.offset)
		if p.partition < 0 { // console producer: Kafka's default partitioner, offset unknown
			wantPart, wantOff = fmt.Sprint(partitionOf(p.key)), h[usage.HeaderOffset]
		}
		if h[usage.HeaderPartition] != wantPart || h[usage.HeaderOffset] != wantOff || h[usage.HeaderOffset] == "" {
			t.Errorf("dead letter %q: source %s/%s, want %s/%s", p.key, h[usage.HeaderPartition], h[usage.HeaderOffset], wantPart, wantOff)
		}
		t.Logf("dead letter %q: reason=%q source=%s/%s", p.key, h[usage.HeaderReason], h[usage.HeaderPartition], h[usage.HeaderOffset])
	}
	exact := tr.waitCounts(a, 60*time.Second)
	tr.waitCountsOf(a, map[string]map[string]uint64{"10.9.9.9": {"GET /healthz": 1}}, false, 60*time.Second)
	if !w.running() {
		t.Fatalf("the worker exited: %v", w.exitErr())
	}
	w.stop(30 * time.Second)
	_, _, dl, _ := workerStats(w)
	if dl != uint64(len(poisons)) {
		t.Errorf("worker reports %d dead-lettered, want %d", dl, len(poisons))
	}
	report(t, "poison_sent=%d dead_lettered=%d worker_reported=%d produce_to_all_dead_lettered=%s good_events_exact_after=%s",
		len(poisons), len(dead), dl, ms(deadLettered), ms(exact))
}

// Scenario 8 (issue 7): SIGTERM a worker: it leaves the group at once (not
// after the session timeout) and its partitions move. SIGTERM the API right
// after a burst: every event it accepted is in Kafka and gets counted.
func TestGracefulShutdown(t *testing.T) {
	needKafka(t)
	resetKafka(t)
	dir := t.TempDir()
	tr := newTraffic(t, 20)
	gw := newGroupWatcher(t)
	a := startAPI(t, filepath.Join(dir, "api"))
	tr.waitReady(a, 60*time.Second)
	startWorker(t, "worker-1", filepath.Join(dir, "w1"))
	w2 := startWorker(t, "worker-2", filepath.Join(dir, "w2"))
	gw.waitUntil(time.Now(), 90*time.Second, "2 members owning all partitions", func(g groupState) bool { return g.covered("worker-1", "worker-2") })
	tr.burst(a, 500, 8)

	// The worker.
	t0 := time.Now()
	exitW, clean := w2.stop(30 * time.Second)
	if !clean {
		t.Fatalf("worker-2 did not exit on SIGTERM")
	}
	_, left := gw.waitUntil(t0, 30*time.Second, "worker-2 to leave", func(g groupState) bool {
		_, in := g.Members["worker-2"]
		return !in
	})
	if left >= 10*time.Second {
		t.Errorf("worker-2 left the group after %v: that is the session timeout, not a LeaveGroup", left)
	}
	_, moved := gw.waitUntil(t0, 60*time.Second, "worker-1 to own all partitions", func(g groupState) bool { return g.covered("worker-1") })

	// The API, right after a burst, with events still queued or in flight.
	const n = 3000
	tr.burst(a, n, 16)
	_, rd, err := tr.readyz(a)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGTERM to the API at %s", time.Now().UTC().Format("15:04:05.000"))
	exitA, clean := a.stop(30 * time.Second)
	if !clean {
		t.Fatalf("the API did not exit on SIGTERM")
	}
	if err := a.exitErr(); err != nil {
		t.Errorf("the API exited with %v", err)
	}
	m := apiStoppedRe.FindStringSubmatch(a.log())
	if m == nil {
		t.Fatalf("the API did not log its final event counts")
	}
	accepted, delivered, failed, dropped := atou(m[1]), atou(m[2]), atou(m[3]), atou(m[4])
	if delivered != accepted || failed != 0 || dropped != 0 {
		t.Errorf("API at exit: accepted %d, delivered %d, failed %d, dropped %d", accepted, delivered, failed, dropped)
	}
	records := topicRecords(t, usersTopic)
	if records != tr.responses.Load() || uint64(records) != accepted {
		t.Errorf("Users holds %d records; the API answered %d requests and accepted %d events", records, tr.responses.Load(), accepted)
	}

	// Everything is counted (a new API process reads the counts).
	a2 := startAPI(t, filepath.Join(dir, "api"))
	tr.waitReady(a2, 60*time.Second)
	exact := tr.waitCounts(a2, 60*time.Second)
	report(t, "worker_sigterm_exit=%s worker_left_group=%s partitions_moved=%s api_burst=%d queued_at_sigterm=%d in_flight_at_sigterm=%d api_sigterm_exit=%s accepted=%d delivered=%d in_Users=%d lost=0 counts_exact=%s",
		ms(exitW), ms(left), ms(moved), n, rd.Events.Queued, rd.Events.InFlight, ms(exitA), accepted, delivered, records, ms(exact))
}

// Processes start in any order, and all at once: two workers and two APIs
// started together on a broker without Inarious' topics (what
// `docker compose up --scale worker=2 --scale api=2` does) all come up, ten
// times. Topic creation is idempotent under concurrency.
func TestConcurrentStartOnFreshBroker(t *testing.T) {
	needKafka(t)
	const rounds = 10
	tr := newTraffic(t, 1)
	gw := newGroupWatcher(t)
	var took []time.Duration
	for round := range rounds {
		resetKafka(t)
		dir := t.TempDir()
		t0 := time.Now()
		var procs []*proc
		for i := range 2 {
			name := fmt.Sprintf("worker-%d", i+1)
			procs = append(procs, startWorker(t, name, filepath.Join(dir, name)))
		}
		var apis []*proc
		for i := range 2 {
			args := append([]string{"api"}, commonArgs(filepath.Join(dir, fmt.Sprintf("api-%d", i+1)))...)
			args = append(args, "--listen", "127.0.0.1:0", "--client-id", fmt.Sprintf("inarious-api-%d", i+1))
			apis = append(apis, startProc(t, fmt.Sprintf("api-%d", i+1), args...))
		}
		for _, p := range apis {
			a := &apiProc{proc: p, base: "http://" + p.waitLog(apiAddrRe, 60*time.Second)}
			tr.waitReady(a, 60*time.Second)
		}
		gw.waitUntil(t0, 60*time.Second, "both workers owning all partitions", func(g groupState) bool { return g.covered("worker-1", "worker-2") })
		took = append(took, time.Since(t0))
		for _, p := range append(procs, apis...) {
			if !p.running() {
				t.Fatalf("round %d: %s exited: %v", round+1, p.name, p.exitErr())
			}
		}
		for _, p := range append(procs, apis...) {
			p.stop(30 * time.Second)
		}
	}
	report(t, "rounds=%d all_four_up=%s", rounds, msList(took))
}

package integration

import (
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"

	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/internal/usagehttp"
)

// Endpoints the simulated clients call, and how the worker counts them.
var endpoints = []struct {
	path func(i int) string
	key  string
}{
	{func(int) string { return "/healthz" }, "GET /healthz"},
	{func(i int) string { return fmt.Sprintf("/users/u-%d", i) }, "GET /users/{id}"}, // 404s count too
	{func(i int) string { return fmt.Sprintf("/no/such/%d", i) }, "GET (unmatched)"},
}

// simClients returns k client addresses, sent as X-Forwarded-For through
// the trusted proxy 127.0.0.1.
func simClients(k int) []string {
	out := make([]string, k)
	for i := range out {
		out[i] = fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)
	}
	return out
}

// traffic drives the API and remembers, per simulated client and endpoint,
// every request that got a response (each produced one activity event), and
// how many responses the API gave in all (the test's own reads included).
type traffic struct {
	t       *testing.T
	http    *http.Client
	clients []string

	mu   sync.Mutex
	want map[string]map[string]uint64
	// sentTo is requests of each client hit sent, answered or not: no
	// count may exceed it.
	sentTo map[string]uint64

	responses atomic.Int64 // every response of any API process this traffic talked to
	failures  atomic.Int64 // transport errors
}

func newTraffic(t *testing.T, k int) *traffic {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConns:        128,
		MaxIdleConnsPerHost: 128,
		IdleConnTimeout:     30 * time.Second,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &traffic{
		t:       t,
		http:    &http.Client{Transport: tr, Timeout: 15 * time.Second},
		clients: simClients(k),
		want:    map[string]map[string]uint64{},
		sentTo:  map[string]uint64{},
	}
}

// started is how many of client's requests hit sent so far.
func (tr *traffic) started(client string) uint64 {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.sentTo[client]
}

// call does one request as client (no X-Forwarded-For when client is "").
// It returns the status and body, or an error when there was no response.
func (tr *traffic) call(a *apiProc, method, path, client, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, a.base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if client != "" {
		req.Header.Set("X-Forwarded-For", client)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := tr.http.Do(req)
	if err != nil {
		tr.failures.Add(1)
		return 0, nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	tr.responses.Add(1)
	return resp.StatusCode, b, err
}

// hit sends request number i as client: endpoint i%3. It records the event
// the API emitted for it.
func (tr *traffic) hit(a *apiProc, client string, i int) (int, time.Duration, error) {
	ep := endpoints[i%len(endpoints)]
	tr.mu.Lock()
	tr.sentTo[client]++
	tr.mu.Unlock()
	t0 := time.Now()
	code, _, err := tr.call(a, http.MethodGet, ep.path(i), client, "")
	lat := time.Since(t0)
	if err != nil {
		return 0, lat, err
	}
	tr.mu.Lock()
	m := tr.want[client]
	if m == nil {
		m = map[string]uint64{}
		tr.want[client] = m
	}
	m[ep.key]++
	tr.mu.Unlock()
	return code, lat, nil
}

// burst sends n requests spread evenly over the clients from conc
// goroutines and returns how long it took. Transport errors fail the test.
func (tr *traffic) burst(a *apiProc, n, conc int) time.Duration {
	tr.t.Helper()
	t0 := time.Now()
	next := atomic.Int64{}
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for g := 0; g < conc; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				j := int(next.Add(1)) - 1
				if j >= n {
					return
				}
				client := tr.clients[j%len(tr.clients)]
				if _, _, err := tr.hit(a, client, j/len(tr.clients)); err != nil {
					firstErr.CompareAndSwap(nil, err.Error()) // one concrete type: string
				}
			}
		}()
	}
	wg.Wait()
	if err := firstErr.Load(); err != nil {
		tr.t.Fatalf("burst: %d requests without a response, first: %v", tr.failures.Load(), err)
	}
	return time.Since(t0)
}

// load is steady background traffic.
type load struct {
	stop     chan struct{}
	done     chan struct{}
	sent     atomic.Int64
	errs     atomic.Int64
	firstErr atomic.Value // string
}

// waitSent waits until more than n requests got a response.
func (l *load) waitSent(t *testing.T, timeout time.Duration, n int64, what string) {
	t.Helper()
	testutil.Eventually(t, timeout, func() (bool, string) {
		sent := l.sent.Load()
		return sent > n, fmt.Sprintf("%s: %d requests answered, want > %d (errors %d, first %v)", what, sent, n, l.errs.Load(), l.firstErr.Load())
	})
}

// background sends one request every interval (ticker-paced, round robin
// over the clients, up to 16 in flight) until stop is called.
func (tr *traffic) background(a *apiProc, interval time.Duration) *load {
	l := &load{stop: make(chan struct{}), done: make(chan struct{})}
	slots := make(chan struct{}, 16)
	go func() {
		defer close(l.done)
		var wg sync.WaitGroup
		defer wg.Wait()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for j := 0; ; j++ {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			select {
			case slots <- struct{}{}:
			case <-l.stop:
				return
			}
			wg.Add(1)
			go func(j int) {
				defer wg.Done()
				defer func() { <-slots }()
				client := tr.clients[j%len(tr.clients)]
				if _, _, err := tr.hit(a, client, j/len(tr.clients)); err != nil {
					l.errs.Add(1)
					l.firstErr.CompareAndSwap(nil, err.Error()) // one concrete type: string
					return
				}
				l.sent.Add(1)
			}(j)
		}
	}()
	return l
}

// halt stops the load, waits for its requests, and fails on transport errors.
func (l *load) halt(t *testing.T) int64 {
	t.Helper()
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
	if n := l.errs.Load(); n > 0 {
		t.Fatalf("background load: %d requests without a response, first: %v", n, l.firstErr.Load())
	}
	return l.sent.Load()
}

// snapshot copies the expected counts.
func (tr *traffic) snapshot() map[string]map[string]uint64 {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := make(map[string]map[string]uint64, len(tr.want))
	for c, m := range tr.want {
		cp := make(map[string]uint64, len(m))
		for k, v := range m {
			cp[k] = v
		}
		out[c] = cp
	}
	return out
}

// sent is the number of simulated-client requests that got a response.
func (tr *traffic) sent() uint64 {
	var n uint64
	for _, m := range tr.snapshot() {
		for _, v := range m {
			n += v
		}
	}
	return n
}

// usage reads GET /usage/{client}; nil when the client is unknown.
func (tr *traffic) usage(a *apiProc, client string) (*usagehttp.ClientUsage, error) {
	code, body, err := tr.call(a, http.MethodGet, "/usage/"+client, "", "")
	if err != nil {
		return nil, err
	}
	if code == http.StatusNotFound {
		return nil, nil
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /usage/%s: %d %s", client, code, body)
	}
	var u usagehttp.ClientUsage
	if err := json.Unmarshal(body, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// countsDiff compares the API's counts with want: "" when exact; over is
// true when some count is above what was sent (never recoverable).
func (tr *traffic) countsDiff(a *apiProc, want map[string]map[string]uint64, atLeast bool) (diff string, over bool, err error) {
	var out []string
	for client, eps := range want {
		u, err := tr.usage(a, client)
		if err != nil {
			return "", false, err
		}
		got := map[string]uint64{}
		var total uint64
		if u != nil {
			for k, v := range u.Endpoints {
				got[k] = v.Count
			}
			total = u.Total
		}
		var wantTotal uint64
		for ep, n := range eps {
			wantTotal += n
			switch {
			case got[ep] < n:
				out = append(out, fmt.Sprintf("%s %q: %d < %d", client, ep, got[ep], n))
			case got[ep] > n && !atLeast:
				over = true
				out = append(out, fmt.Sprintf("%s %q: %d > %d (over-counted)", client, ep, got[ep], n))
			}
		}
		for ep, n := range got {
			if _, ok := eps[ep]; !ok && !atLeast {
				over = true
				out = append(out, fmt.Sprintf("%s %q: %d, none sent", client, ep, n))
			}
		}
		if !atLeast && total != wantTotal {
			out = append(out, fmt.Sprintf("%s total: %d != %d", client, total, wantTotal))
			over = over || total > wantTotal
		}
	}
	sort.Strings(out)
	return strings.Join(out, "; "), over, nil
}

// waitCounts polls until the API's counts equal everything sent (load must
// be stopped) and returns how long that took. An over-count fails at once.
func (tr *traffic) waitCounts(a *apiProc, timeout time.Duration) time.Duration {
	tr.t.Helper()
	return tr.waitCountsOf(a, tr.snapshot(), false, timeout)
}

// waitCountsOf polls until counts equal want (atLeast: are at least want).
func (tr *traffic) waitCountsOf(a *apiProc, want map[string]map[string]uint64, atLeast bool, timeout time.Duration) time.Duration {
	tr.t.Helper()
	return testutil.EventuallyEvery(tr.t, timeout, 100*time.Millisecond, func() (bool, string) {
		diff, over, err := tr.countsDiff(a, want, atLeast)
		switch {
		case err != nil:
			return false, "counts not read: " + clip(err.Error())
		case over:
			tr.t.Fatalf("counts exceed the events sent (duplicates counted): %s", clip(diff))
		}
		return diff == "", "counts not exact: " + clip(diff)
	})
}

func clip(s string) string {
	if len(s) > 1500 {
		return s[:1500] + " …"
	}
	return s
}

// readyz is the body of GET /readyz.
type readyz struct {
	Ready         bool     `json:"ready"`
	ViewRecovered bool     `json:"view_recovered"`
	EmitterOK     bool     `json:"emitter_ok"`
	Degraded      []string `json:"degraded"`
	Events        struct {
		Accepted  uint64 `json:"accepted"`
		Delivered uint64 `json:"delivered"`
		Failed    uint64 `json:"failed"`
		Dropped   uint64 `json:"dropped"`
		Retried   uint64 `json:"retried"`
		Queued    int    `json:"queued"`
		InFlight  int    `json:"in_flight"`
	} `json:"events"`
}

func (tr *traffic) readyz(a *apiProc) (int, readyz, error) {
	var r readyz
	code, body, err := tr.call(a, http.MethodGet, "/readyz", "", "")
	if err != nil {
		return 0, r, err
	}
	err = json.Unmarshal(body, &r)
	return code, r, err
}

// waitReady polls /readyz until 200.
func (tr *traffic) waitReady(a *apiProc, timeout time.Duration) time.Duration {
	tr.t.Helper()
	return testutil.Eventually(tr.t, timeout, func() (bool, string) {
		code, _, err := tr.readyz(a)
		return err == nil && code == http.StatusOK, fmt.Sprintf("%s /readyz = %d (err %v), want 200", a.name, code, err)
	})
}

// partitionOf is the Users partition of a client's events (the API keys
// events by client and partitions with Kafka's murmur2, kafka.Hasher).
func partitionOf(client string) int32 {
	p := sarama.NewCustomHashPartitioner(kafka.Hasher)(usersTopic)
	n, err := p.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(client)}, partitions)
	if err != nil {
		panic(err)
	}
	return n
}

// clientsOn returns the clients whose events go to the partitions in parts.
func (tr *traffic) clientsOn(parts []int32) []string {
	set := map[int32]bool{}
	for _, p := range parts {
		set[p] = true
	}
	var out []string
	for _, c := range tr.clients {
		if set[partitionOf(c)] {
			out = append(out, c)
		}
	}
	return out
}

// do sends one request as client and records it under the endpoint key the
// worker counts it as. It returns the status and latency.
func (tr *traffic) do(a *apiProc, method, path, client, body, key string) (int, []byte, time.Duration, error) {
	t0 := time.Now()
	code, b, err := tr.call(a, method, path, client, body)
	lat := time.Since(t0)
	if err != nil {
		return 0, nil, lat, err
	}
	tr.mu.Lock()
	m := tr.want[client]
	if m == nil {
		m = map[string]uint64{}
		tr.want[client] = m
	}
	m[key]++
	tr.mu.Unlock()
	return code, b, lat, nil
}

// probe sends one GET /healthz per client.
func (tr *traffic) probe(a *apiProc) {
	tr.t.Helper()
	for _, c := range tr.clients {
		if _, _, err := tr.hit(a, c, 0); err != nil {
			tr.t.Fatalf("probe %s: %v", c, err)
		}
	}
}

// originalProducer sends events the way the original FastAPI service did —
// keyed by the server's hostname, fields 1-4 only, the full URL as endpoint,
// partitioned by CRC32 like librdkafka — for clients of their own, round
// robin, one every interval, until halted. They count in tr's expectations.
func (tr *traffic) originalProducer(interval time.Duration, clients []string) *load {
	tr.t.Helper()
	sc := saramaConfig()
	sc.Producer.Return.Successes = true
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Partitioner = sarama.NewManualPartitioner
	prod, err := sarama.NewSyncProducer(brokers, sc)
	if err != nil {
		tr.t.Fatalf("original producer: %v", err)
	}
	const host = "localhost"
	partition := int32(crc32.ChecksumIEEE([]byte(host)) % partitions)
	l := &load{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		defer prod.Close()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for j := 0; ; j++ {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			client := clients[j%len(clients)]
			value, _ := proto.Marshal(&activitypb.BackendApiActivity{
				ClientHost: client, ClientPort: "50000", Endpoint: "http://localhost:8000/users/", HttpMethod: "GET",
			})
			msg := &sarama.ProducerMessage{Topic: usersTopic, Key: sarama.StringEncoder(host), Value: sarama.ByteEncoder(value), Partition: partition}
			if _, _, err := prod.SendMessage(msg); err != nil {
				l.errs.Add(1)
				l.firstErr.CompareAndSwap(nil, err.Error())
				continue
			}
			tr.mu.Lock()
			if tr.want[client] == nil {
				tr.want[client] = map[string]uint64{}
			}
			tr.want[client]["GET /users"]++
			tr.mu.Unlock()
			l.sent.Add(1)
		}
	}()
	return l
}

// tally compares the API's counts with every acknowledged request: how many
// were acknowledged and counted, and how many counted beyond (duplicates) or
// short of (missing) them, endpoint by endpoint.
func (tr *traffic) tally(a *apiProc) (acked, counted, duplicates, missing uint64) {
	tr.t.Helper()
	for client, eps := range tr.snapshot() {
		u, err := tr.usage(a, client)
		if err != nil {
			tr.t.Fatalf("tally: %v", err)
		}
		got := map[string]uint64{}
		if u != nil {
			counted += u.Total
			for k, v := range u.Endpoints {
				got[k] = v.Count
			}
		}
		for _, n := range eps {
			acked += n
		}
		for ep := range mergeKeys(eps, got) {
			switch w, g := eps[ep], got[ep]; {
			case g > w:
				duplicates += g - w
			case g < w:
				missing += w - g
			}
		}
	}
	return acked, counted, duplicates, missing
}

func mergeKeys(a, b map[string]uint64) map[string]struct{} {
	out := make(map[string]struct{}, len(a)+len(b))
	for k := range a {
		out[k] = struct{}{}
	}
	for k := range b {
		out[k] = struct{}{}
	}
	return out
}

// apiMetric reads one unlabelled series of the API's /metrics.
func apiMetric(t *testing.T, tr *traffic, a *apiProc, name string) float64 {
	t.Helper()
	code, body, err := tr.call(a, http.MethodGet, "/metrics", "", "")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				t.Fatalf("%s: %q: %v", name, line, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

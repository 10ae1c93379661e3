package alerts_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/inarious/inarious/internal/alerts"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/testutil"
)

// receiver is a webhook that verifies every delivery's signature and
// answers with the statuses given, then 200s.
type receiver struct {
	t      *testing.T
	secret string
	mu     sync.Mutex
	fail   []int
	down   bool
	got    []alerts.Alert // deliveries accepted, in order
	tries  int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	if err := alerts.Verify(r.secret, req.Header.Get(alerts.SignatureHeader), body, time.Minute, time.Now()); err != nil {
		r.t.Errorf("signature %q: %v", req.Header.Get(alerts.SignatureHeader), err)
	}
	var a alerts.Alert
	if err := json.Unmarshal(body, &a); err != nil || req.Header.Get(alerts.IdempotencyHeader) != a.ID {
		r.t.Errorf("body %s, idempotency key %q: %v", body, req.Header.Get(alerts.IdempotencyHeader), err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tries++
	if r.down {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if len(r.fail) > 0 {
		w.WriteHeader(r.fail[0])
		r.fail = r.fail[1:]
		return
	}
	r.got = append(r.got, a)
}

func (r *receiver) received() ([]alerts.Alert, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]alerts.Alert(nil), r.got...), r.tries
}

func alertJSON(id string) []byte {
	b, _ := json.Marshal(&alerts.Alert{ID: id, Rule: "r", Kind: alerts.ClientUsage, Client: "alice", Window: "1m", Threshold: 100, Value: 10})
	return b
}

func fastOptions(hook *alerts.Webhook) alerts.DeliveryOptions {
	return alerts.DeliveryOptions{Webhook: hook, Attempts: 4, Backoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}
}

func TestDeliverRetriesThenSucceeds(t *testing.T) {
	rcv := &receiver{t: t, secret: "s3", fail: []int{503, 500}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	d := alerts.NewDeliverer(alerts.NewRules(), fastOptions(&alerts.Webhook{URL: srv.URL, Secret: "s3"}), nil)
	out := d.Deliver(context.Background(), alertJSON("a1"))
	if got, tries := rcv.received(); !out.Delivered || out.Attempts != 3 || len(got) != 1 || got[0].ID != "a1" || tries != 3 {
		t.Fatalf("outcome %+v, received %+v in %d tries", out, got, tries)
	}
}

func TestDeliverUsesTheRulesWebhookAndStopsOnRefusal(t *testing.T) {
	rcv := &receiver{t: t, secret: "rule-secret", fail: []int{http.StatusBadRequest}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	rules := alerts.NewRules()
	rules.Set(alerts.Rule{Name: "r", Kind: alerts.ClientUsage, Client: "alice", Window: "1m", Limit: 1, Thresholds: []float64{100},
		Webhook: &alerts.Webhook{URL: srv.URL, Secret: "rule-secret"}})
	d := alerts.NewDeliverer(rules, fastOptions(&alerts.Webhook{URL: "http://127.0.0.1:1/unused", Secret: "x"}), nil)
	out := d.Deliver(context.Background(), alertJSON("a2"))
	if out.Delivered || out.Attempts != 1 || out.Reason == "" {
		t.Fatalf("a 400 is not retried: %+v", out)
	}
	if out := alerts.NewDeliverer(alerts.NewRules(), fastOptions(nil), nil).Deliver(context.Background(), alertJSON("a3")); out.Reason == "" || out.Attempts != 0 {
		t.Errorf("no webhook at all: %+v", out)
	}
}

// TestDelivererOnKafka: alerts read from the topic are delivered once per
// ID, the one whose receiver stays down is dead-lettered, and every offset
// is committed.
func TestDelivererOnKafka(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, string(alerts.Topic)), kfake.SeedTopics(1, alerts.DeadLetterTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cfg := kafka.Defaults()
	cfg.Brokers = cluster.ListenAddrs()
	rcv := &receiver{t: t, secret: "g"}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	d := alerts.NewDeliverer(alerts.NewRules(), fastOptions(&alerts.Webhook{URL: srv.URL, Secret: "g"}), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, cfg) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("deliverer: %v", err)
		}
	}()

	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...), kgo.DefaultProduceTopic(string(alerts.Topic)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce := func(ids ...string) {
		for _, id := range ids {
			if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(id), Value: alertJSON(id)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	produce("x1", "x2", "x1") // x1 fired again (a replay): same ID
	testutil.Eventually(t, 20*time.Second, func() (bool, string) {
		got, _ := rcv.received()
		return len(got) == 2, fmt.Sprintf("received %+v", got)
	})
	rcv.mu.Lock()
	rcv.down = true
	rcv.mu.Unlock()
	produce("x3")
	var dead *kgo.Record
	testutil.ReadTopic(ctx, t, cfg.Brokers, alerts.DeadLetterTopic, 1, func(r *kgo.Record) { dead = r })
	if string(dead.Key) != "x3" || len(dead.Headers) == 0 || dead.Headers[0].Key != "inarious-reason" {
		t.Errorf("dead letter %q %v", dead.Key, dead.Headers)
	}
	if _, tries := rcv.received(); tries != 2+4 {
		t.Errorf("%d tries, want 2 deliveries and 4 attempts for x3", tries)
	}
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		n := committed(t, cl)
		return n == 4, fmt.Sprintf("%d offsets committed, want 4", n)
	})
	if c := counters(d); c["alerts_delivered_total"] != 2 || c["alerts_duplicates_dropped_total"] != 1 ||
		c["alerts_dead_lettered_total"] != 1 || c["alerts_delivery_retries_total"] != 3 {
		t.Errorf("counters %v", c)
	}
}

// committed is the sum of the deliverers' committed offsets over the
// alerts topic's partitions.
func committed(t *testing.T, cl *kgo.Client) int64 {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = alerts.DelivererGroup
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic = string(alerts.Topic)
	rt.Partitions = []int32{0, 1}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, tp := range resp.Topics {
		for _, p := range tp.Partitions {
			n += max(p.Offset, 0)
		}
	}
	return n
}

func counters(d *alerts.Deliverer) map[string]uint64 {
	out := map[string]uint64{}
	for _, c := range d.Counters() {
		out[c.Name] = c.Value()
	}
	return out
}

package alerts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/metrics"
)

// DeliveryOptions configure a Deliverer.
type DeliveryOptions struct {
	// Webhook receives the alerts of rules without one (nil: they are
	// dead-lettered).
	Webhook *Webhook
	// Attempts per alert before it is dead-lettered (default 8).
	Attempts int
	// Backoff is the wait before the first retry, doubled for each next
	// one up to MaxBackoff (defaults 250 ms, 10 s): 8 attempts span ~26 s.
	Backoff, MaxBackoff time.Duration
	// Timeout of one attempt (default 5 s).
	Timeout time.Duration
	// Concurrency is how many alerts are delivered at once (default 32).
	Concurrency int
	// Client sends the requests (default: one with Timeout).
	Client *http.Client
	// Remember is how many delivered IDs are remembered to drop repeats
	// (default 65536).
	Remember int
}

func (o *DeliveryOptions) defaults() {
	if o.Attempts <= 0 {
		o.Attempts = 8
	}
	if o.Backoff <= 0 {
		o.Backoff = 250 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 32
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: o.Timeout}
	}
	if o.Remember <= 0 {
		o.Remember = 65536
	}
}

// Deliverer consumes Topic (consumer group DelivererGroup) and POSTs each
// alert to its rule's webhook, signed (Sign), with its ID as the
// idempotency key; it retries with exponential backoff and dead-letters
// an alert (DeadLetterTopic) once the attempts are spent or the receiver
// refuses it (4xx other than 408 and 429). Offsets are committed only
// after delivery or dead-lettering: at least once, and a duplicate (an
// alert fired again after a crash, same ID) is dropped if this process
// delivered it before.
type Deliverer struct {
	rules *Rules
	o     DeliveryOptions
	log   *slog.Logger
	now   func() time.Time

	mu       sync.Mutex
	done     *simplelru.LRU[string, struct{}]
	inFlight map[string]bool

	delivered, retries, deadLettered, duplicates atomic.Uint64
}

// NewDeliverer delivers the alerts of rules.
func NewDeliverer(rules *Rules, o DeliveryOptions, log *slog.Logger) *Deliverer {
	o.defaults()
	if log == nil {
		log = slog.Default()
	}
	done, _ := simplelru.NewLRU[string, struct{}](o.Remember, nil)
	return &Deliverer{rules: rules, o: o, log: log, now: time.Now, done: done, inFlight: map[string]bool{}}
}

// Counters are the deliverer's metrics.
func (d *Deliverer) Counters() []metrics.Counter {
	return []metrics.Counter{
		{Name: "alerts_delivered_total", Help: "Alerts a webhook accepted (2xx).", Value: d.delivered.Load},
		{Name: "alerts_delivery_retries_total", Help: "Webhook attempts after an alert's first (the receiver failed or was away).", Value: d.retries.Load},
		{Name: "alerts_dead_lettered_total", Help: "Alerts written to alerts-dead-letter: the receiver stayed down past the retry budget, refused it, or there was no webhook.", Value: d.deadLettered.Load},
		{Name: "alerts_duplicates_dropped_total", Help: "Alerts not sent again: this process had delivered their ID.", Value: d.duplicates.Load},
	}
}

// Outcome is what became of one alert.
type Outcome struct {
	Delivered bool
	// Reason it was not delivered (it goes to the dead letter), empty when
	// delivered or when ctx ended first (then it is neither).
	Reason   string
	Attempts int
	Webhook  string
}

// Finished is whether the alert was delivered or is to be dead-lettered.
func (o Outcome) Finished() bool { return o.Delivered || o.Reason != "" }

// Deliver sends one alert (its JSON as written to Topic) until it is
// delivered, refused or the attempts are spent, or ctx ends.
func (d *Deliverer) Deliver(ctx context.Context, body []byte) Outcome {
	var a Alert
	if err := json.Unmarshal(body, &a); err != nil || a.ID == "" {
		return Outcome{Reason: "not an alert"}
	}
	hook := d.o.Webhook
	if c, ok := d.rules.Current().Rule(a.Rule); ok && c.Webhook != nil {
		hook = c.Webhook
	}
	if hook == nil || hook.URL == "" {
		return Outcome{Reason: "no webhook: the rule has none and --alert-webhook-url is not set"}
	}
	out := Outcome{Webhook: hook.URL}
	wait := d.o.Backoff
	for out.Attempts < d.o.Attempts {
		if out.Attempts > 0 {
			d.retries.Add(1)
			select {
			case <-ctx.Done():
				return Outcome{Attempts: out.Attempts, Webhook: hook.URL}
			case <-time.After(wait):
			}
			wait = min(2*wait, d.o.MaxBackoff)
		}
		out.Attempts++
		status, err := d.post(ctx, hook, a.ID, body)
		switch {
		case ctx.Err() != nil:
			return Outcome{Attempts: out.Attempts, Webhook: hook.URL}
		case err == nil && status >= 200 && status < 300:
			out.Delivered = true
			return out
		case err == nil && status >= 400 && status < 500 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests:
			out.Reason = "receiver refused it: " + strconv.Itoa(status)
			return out
		case err != nil:
			out.Reason = err.Error()
		default:
			out.Reason = "receiver answered " + strconv.Itoa(status)
		}
		d.log.Debug("alert delivery failed", "id", a.ID, "attempt", out.Attempts, "reason", out.Reason)
	}
	out.Reason = fmt.Sprintf("%d attempts failed, the last: %s", out.Attempts, out.Reason)
	return out
}

func (d *Deliverer) post(ctx context.Context, hook *Webhook, id string, body []byte) (int, error) {
	actx, cancel := context.WithTimeout(ctx, d.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, hook.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Inarious-Alerts/1")
	req.Header.Set(IdempotencyHeader, id)
	req.Header.Set(SignatureHeader, Sign(hook.Secret, d.now(), body))
	resp, err := d.o.Client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// claim reserves id for delivery, false if it was delivered or is being
// delivered.
func (d *Deliverer) claim(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.inFlight[id] || d.done.Contains(id) {
		return false
	}
	d.inFlight[id] = true
	return true
}

// release ends id's delivery; finished remembers it.
func (d *Deliverer) release(id string, finished bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.inFlight, id)
	if finished {
		d.done.Add(id, struct{}{})
	}
}

// Run consumes alerts until ctx ends, starting a new session after a pause
// when Kafka fails it.
func (d *Deliverer) Run(ctx context.Context, cfg kafka.Config) error {
	backoff := time.Second
	for {
		err := d.run(ctx, cfg)
		if ctx.Err() != nil {
			return nil
		}
		d.log.Warn("alert deliverer failed; starting again", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (d *Deliverer) run(ctx context.Context, cfg kafka.Config) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(cfg.ClientID),
		kgo.ConsumerGroup(DelivererGroup),
		kgo.ConsumeTopics(string(Topic)),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(kafka.SessionTimeout),
		kgo.HeartbeatInterval(kafka.HeartbeatInterval),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(kafka.FetchWait),
		kgo.ProducerLinger(0),
	)
	if err != nil {
		return err
	}
	defer cl.Close() // leaves the group
	// A poll blocks rebalances until allowed; leaving the group waits for it.
	defer cl.AllowRebalance()
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			cl.AllowRebalance()
			if errors.Is(errs[0].Err, kgo.ErrClientClosed) {
				return errs[0].Err
			}
			return fmt.Errorf("alerts fetch: %w", errs[0].Err)
		}
		err := d.round(ctx, cl, fetches.Records())
		cl.AllowRebalance()
		if err != nil {
			return err
		}
	}
}

// round delivers a poll's records concurrently, dead-letters the failed
// ones, and commits, per partition, up to the first record not finished.
// One is unfinished when ctx ended during it (the next owner reads it
// again) or its dead letter could not be written: then round returns an
// error, and Run starts a new session from the committed offsets.
func (d *Deliverer) round(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	finished := make([]bool, len(recs))
	sem := make(chan struct{}, d.o.Concurrency)
	var wg sync.WaitGroup
	for i, r := range recs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			finished[i] = d.handle(ctx, cl, r)
		})
	}
	wg.Wait()
	var commit []*kgo.Record
	stopped := map[int32]bool{}
	for i, r := range recs {
		if stopped[r.Partition] || !finished[i] {
			stopped[r.Partition] = true
			continue
		}
		commit = append(commit, r)
	}
	var err error
	if len(commit) > 0 {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		err = cl.CommitRecords(cctx, commit...)
	}
	if len(stopped) > 0 && ctx.Err() == nil {
		err = errors.Join(err, errors.New("an alert was neither delivered nor dead-lettered; reading again from the committed offsets"))
	}
	return err
}

// handle delivers or dead-letters one record, reporting whether it is done.
func (d *Deliverer) handle(ctx context.Context, cl *kgo.Client, r *kgo.Record) bool {
	id := string(r.Key)
	if !d.claim(id) {
		d.duplicates.Add(1)
		return true
	}
	out := d.Deliver(ctx, r.Value)
	if out.Delivered {
		d.delivered.Add(1)
		d.release(id, true)
		return true
	}
	if !out.Finished() {
		d.release(id, false)
		return false
	}
	dl := &kgo.Record{Topic: DeadLetterTopic, Key: r.Key, Value: r.Value, Headers: []kgo.RecordHeader{
		{Key: "inarious-reason", Value: []byte(out.Reason)},
		{Key: "inarious-attempts", Value: []byte(strconv.Itoa(out.Attempts))},
		{Key: "inarious-webhook", Value: []byte(out.Webhook)},
	}}
	if err := cl.ProduceSync(ctx, dl).FirstErr(); err != nil {
		d.log.Warn("alert not dead-lettered; it is read again", "id", id, "err", err)
		d.release(id, false)
		return false
	}
	d.deadLettered.Add(1)
	d.log.Warn("alert dead-lettered", "id", id, "reason", out.Reason, "attempts", out.Attempts)
	d.release(id, true)
	return true
}

package middleware

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/auth"
)

// HTTPTransport sends events in batches to an Inarious server's
// POST /events. Each event gets an id of its own, which a batch keeps
// through its retries, so a server that deduplicates by id counts a batch
// sent twice (after a lost answer, say) once. 429 and 503 are retried
// after their Retry-After, other transient failures with exponential
// backoff; the batch is kept meanwhile. Events the server rejects (the
// batch's errors, or a 4xx for all of it) are settled with ErrRejected.
type HTTPTransport struct {
	url       string
	client    *http.Client
	apiKey    string
	maxEvents int
	maxBytes  int
	linger    time.Duration
	backoff   time.Duration // the first retry's, doubled up to maxBackoff
	log       *slog.Logger
	idPrefix  string
	ids       *idCounter
	// wait sleeps d or until ctx ends; tests replace it.
	wait func(ctx context.Context, d time.Duration) error

	mu      sync.Mutex
	pending []pendingEvent
	closing bool
	wake    chan struct{} // a batch is full, or Close was called
	ctx     context.Context
	cancel  context.CancelFunc
	stopped chan struct{}
	// failing is the last failure logged, so a long outage logs once.
	failing string
}

// pendingEvent is an event handed to the transport, with its id and, once
// encoded, its JSON item.
type pendingEvent struct {
	msg  any
	id   string
	item []byte
	done func(any, error)
}

// HTTPOption configures NewHTTPTransport.
type HTTPOption func(*HTTPTransport)

// HTTPAPIKey sends key as X-API-Key, for a server with API keys on (the
// key needs the scope events:write).
func HTTPAPIKey(key string) HTTPOption { return func(t *HTTPTransport) { t.apiKey = key } }

// HTTPClient sends the requests (default a client with a 10 s timeout).
func HTTPClient(c *http.Client) HTTPOption { return func(t *HTTPTransport) { t.client = c } }

// HTTPBatch bounds a batch to maxEvents events (at most 1,000, the
// server's limit; default 100) and about maxBytes of JSON (default
// 60 KiB, under the server's default --max-body-bytes of 64 KiB).
func HTTPBatch(maxEvents, maxBytes int) HTTPOption {
	return func(t *HTTPTransport) {
		if maxEvents > 0 {
			t.maxEvents = min(maxEvents, maxBatchEvents)
		}
		if maxBytes > 0 {
			t.maxBytes = maxBytes
		}
	}
}

// HTTPLinger is how long an event waits for others to fill its batch
// (default 100 ms).
func HTTPLinger(d time.Duration) HTTPOption { return func(t *HTTPTransport) { t.linger = d } }

// HTTPLogger sets where failed batches are logged (default slog.Default()).
func HTTPLogger(log *slog.Logger) HTTPOption { return func(t *HTTPTransport) { t.log = log } }

const (
	// maxBatchEvents is what the server takes in one batch.
	maxBatchEvents = 1000
	// maxBackoff caps the pause between retries without Retry-After;
	// maxRetryAfter caps what a Retry-After may ask for.
	maxBackoff    = 30 * time.Second
	maxRetryAfter = 10 * time.Minute
	// httpCloseTimeout bounds how long Close keeps trying to deliver.
	httpCloseTimeout = time.Minute
)

// NewHTTPTransport sends to url, an Inarious server's events endpoint,
// e.g. "http://localhost:8080/events".
func NewHTTPTransport(url string, opts ...HTTPOption) *HTTPTransport {
	var prefix [8]byte
	_, _ = crand.Read(prefix[:])
	t := &HTTPTransport{
		url:       url,
		client:    &http.Client{Timeout: 10 * time.Second},
		maxEvents: 100,
		maxBytes:  60 << 10,
		linger:    100 * time.Millisecond,
		backoff:   100 * time.Millisecond,
		log:       slog.Default(),
		idPrefix:  hex.EncodeToString(prefix[:]),
		ids:       newIDCounter(),
		wait:      sleep,
		wake:      make(chan struct{}, 1),
		stopped:   make(chan struct{}),
	}
	for _, opt := range opts {
		opt(t)
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	go t.run()
	return t
}

var errTransportClosed = errors.New("http transport closed")

// Produce takes msg for the next batch. It never blocks.
func (t *HTTPTransport) Produce(_ string, msg any, done func(msg any, err error)) error {
	if _, ok := msg.(*activitypb.BackendApiActivity); !ok {
		return fmt.Errorf("http transport: %T is no activity event", msg)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing {
		return errTransportClosed
	}
	t.pending = append(t.pending, pendingEvent{msg: msg, id: t.idPrefix + newID(t.ids), done: done})
	if n := len(t.pending); n == 1 || n == t.maxEvents {
		t.signal() // the first starts the linger, a full batch ends it
	}
	return nil
}

func (t *HTTPTransport) signal() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// Close sends what is pending, retrying for up to a minute, then fails
// what is left and returns.
func (t *HTTPTransport) Close() error {
	t.mu.Lock()
	already := t.closing
	t.closing = true
	t.mu.Unlock()
	if !already {
		t.signal()
	}
	timer := time.AfterFunc(httpCloseTimeout, t.cancel)
	defer timer.Stop()
	<-t.stopped
	t.cancel()
	return nil
}

func (t *HTTPTransport) run() {
	defer close(t.stopped)
	for {
		batch, closing := t.nextBatch()
		if len(batch) == 0 {
			if closing {
				return
			}
			continue
		}
		t.deliver(batch)
	}
}

// nextBatch waits for events, then up to the linger for a full batch, and
// takes one batch off the pending events.
func (t *HTTPTransport) nextBatch() ([]pendingEvent, bool) {
	n, closing := t.count()
	for n == 0 && !closing {
		<-t.wake
		n, closing = t.count()
	}
	if n < t.maxEvents && !closing {
		linger := time.NewTimer(t.linger)
	wait:
		// A wake may be stale (a batch taken since): only a full batch or
		// Close ends the linger early.
		for n < t.maxEvents && !closing {
			select {
			case <-t.wake:
				n, closing = t.count()
			case <-linger.C:
				break wait
			}
		}
		linger.Stop()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	size := 2 // []
	n = 0
	for n < len(t.pending) && n < t.maxEvents {
		ev := &t.pending[n]
		if ev.item == nil {
			ev.item = encodeEvent(ev.msg.(*activitypb.BackendApiActivity), ev.id)
		}
		if n > 0 && size+len(ev.item)+1 > t.maxBytes {
			break
		}
		size += len(ev.item) + 1
		n++
	}
	batch := make([]pendingEvent, n)
	copy(batch, t.pending)
	t.pending = append(t.pending[:0], t.pending[n:]...)
	return batch, t.closing
}

func (t *HTTPTransport) count() (pending int, closing bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending), t.closing
}

// encodeEvent is ev as a batch item: its protobuf JSON mapping plus "id".
func encodeEvent(ev *activitypb.BackendApiActivity, id string) []byte {
	b, err := protojson.Marshal(ev)
	if err != nil { // an activity event always marshals
		panic(err)
	}
	rest := bytes.TrimLeft(bytes.TrimPrefix(bytes.TrimSpace(b), []byte("{")), " \t\r\n")
	item := make([]byte, 0, len(b)+len(id)+10)
	item = append(item, `{"id":`...)
	item = strconv.AppendQuote(item, id)
	if len(rest) > 0 && rest[0] != '}' {
		item = append(item, ',')
	}
	return append(item, rest...)
}

// batchAnswer is the part of the server's answer to a batch the transport reads.
type batchAnswer struct {
	Errors []struct {
		Index int    `json:"index"`
		Error string `json:"error"`
	} `json:"errors"`
}

// deliver sends batch until the server took it or rejected it, or Close
// gave up, and settles every event of it.
func (t *HTTPTransport) deliver(batch []pendingEvent) {
	body := make([]byte, 0, 2+len(batch)*(len(batch[0].item)+1))
	body = append(body, '[')
	for i, ev := range batch {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, ev.item...)
	}
	body = append(body, ']')
	backoff := t.backoff
	for attempt := 1; ; attempt++ {
		status, header, answer, err := t.post(body)
		var delay time.Duration
		switch {
		case err != nil:
			t.noteFailure(slog.LevelWarn, "events not delivered; retrying", "err", err)
		case status >= 200 && status < 300:
			t.settleAccepted(batch, answer)
			return
		case status == http.StatusRequestEntityTooLarge && len(batch) > 1:
			t.deliver(batch[:len(batch)/2])
			t.deliver(batch[len(batch)/2:])
			return
		case retryable(status):
			delay = retryAfter(header)
			t.noteFailure(slog.LevelWarn, "events not taken; retrying", "status", status, "retry_after", delay)
		default:
			detail := problemDetail(answer)
			t.noteFailure(slog.LevelError, "events rejected", "status", status, "events", len(batch), "detail", detail)
			t.settle(batch, fmt.Errorf("%w: status %d: %s", ErrRejected, status, detail))
			return
		}
		if delay == 0 {
			// Full jitter keeps many senders from retrying in step.
			delay = time.Duration(rand.Int64N(int64(backoff))) + time.Millisecond
			backoff = min(2*backoff, maxBackoff)
		}
		if t.wait(t.ctx, delay) != nil {
			t.settle(batch, fmt.Errorf("events not delivered before the transport closed, after %d attempts", attempt))
			return
		}
	}
}

// post sends body once.
func (t *HTTPTransport) post(body []byte) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(t.ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "inarious-middleware")
	if t.apiKey != "" {
		req.Header.Set(auth.KeyHeader, t.apiKey)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil && resp.StatusCode < 300 {
		// The server may have taken the batch: sending it again is safe,
		// its ids make it count once.
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, answer, nil
}

// settleAccepted settles a batch the server answered: the items its answer
// lists as rejected with ErrRejected, the others as delivered.
func (t *HTTPTransport) settleAccepted(batch []pendingEvent, answer []byte) {
	t.mu.Lock()
	t.failing = ""
	t.mu.Unlock()
	var a batchAnswer
	_ = json.Unmarshal(answer, &a) // without a readable answer, all were taken
	rejected := make(map[int]string, len(a.Errors))
	for _, e := range a.Errors {
		rejected[e.Index] = e.Error
	}
	if len(rejected) > 0 {
		t.log.Warn("events rejected by the server", "rejected", len(rejected), "events", len(batch), "first", a.Errors[0].Error)
	}
	for i, ev := range batch {
		if why, ok := rejected[i]; ok {
			ev.done(ev.msg, fmt.Errorf("%w: %s", ErrRejected, why))
			continue
		}
		ev.done(ev.msg, nil)
	}
}

func (t *HTTPTransport) settle(batch []pendingEvent, err error) {
	for _, ev := range batch {
		ev.done(ev.msg, err)
	}
}

// noteFailure logs a failure unless the same one (message and first
// attribute) was logged last: an outage or a wrong key logs once, not per
// batch.
func (t *HTTPTransport) noteFailure(level slog.Level, msg string, args ...any) {
	key := fmt.Sprint(msg, args[:2])
	t.mu.Lock()
	repeated := t.failing == key
	t.failing = key
	t.mu.Unlock()
	if !repeated {
		t.log.Log(context.Background(), level, msg, args...)
	}
}

// retryable reports whether a batch answered with status may succeed later.
func retryable(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusRequestTimeout:
		return true
	}
	return status >= 500
}

// retryAfter is the pause a Retry-After header asks for (seconds or a
// date), 0 without one.
func retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.Atoi(v); err == nil {
		d = time.Duration(secs) * time.Second
	} else if at, err := http.ParseTime(v); err == nil {
		d = time.Until(at)
	}
	return min(max(d, 0), maxRetryAfter)
}

// problemDetail is the detail of a problem+json answer, else its start.
func problemDetail(answer []byte) string {
	var p struct {
		Detail string `json:"detail"`
	}
	if json.Unmarshal(answer, &p) == nil && p.Detail != "" {
		return p.Detail
	}
	return string(answer[:min(len(answer), 200)])
}

func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

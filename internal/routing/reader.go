package routing

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/kafka"
	"github.com/inarious/inarious/internal/metrics"
	"github.com/inarious/inarious/internal/ownership"
	"github.com/inarious/inarious/internal/windows"
)

// Owners is where the Reader learns who owns what (ownership.Tracker).
type Owners interface {
	// Current is the latest map (nil if none yet) and a channel closed
	// when a newer one replaces it.
	Current() (*ownership.Map, <-chan struct{})
	// Refresh asks for a new map soon, without blocking.
	Refresh()
}

// Unavailable is the error of a read that found no owner to answer within
// the retry window; the API answers it with Status and Retry-After.
type Unavailable struct {
	Detail string
	After  time.Duration
	public string
	table  string
}

func (e *Unavailable) Error() string {
	what := e.table
	if what == "" {
		what = "usage"
	}
	return what + " unavailable: " + e.Detail
}

// Status is the HTTP status to answer with.
func (e *Unavailable) Status() int { return http.StatusServiceUnavailable }

// RetryAfter is how long the client should wait before asking again.
func (e *Unavailable) RetryAfter() time.Duration { return e.After }

// PublicDetail says what happened without internal addresses.
func (e *Unavailable) PublicDetail() string { return e.public }

// Reader reads usage from the worker owning each client's partition (a
// views.UsageReader). It never answers from anyone but the member Kafka
// names as the owner, and that member checks ownership itself at read time;
// while no owner answers (a rebalance) it retries for Window, then gives up
// with *Unavailable.
type Reader struct {
	forwarder
	windows windows.Config
	now     func() time.Time
}

// forwarder is what every table's routed reader shares: the owners map,
// the pooled HTTP client, the forwarding of a read to the owner of its
// key's partition with retries, the fan-out to every owner, and counters.
type forwarder struct {
	owners Owners
	http   *http.Client
	log    *slog.Logger
	// table names the table in errors and counters ("usage").
	table string
	// partitionOf places a key as the workers' group does.
	partitionOf func(key string, partitions int) int32
	// Window bounds the retries of one read.
	Window time.Duration
	// AttemptTimeout bounds one forwarded request.
	AttemptTimeout time.Duration

	ok, notFound, refused, connFailed, noOwner, unavailable atomic.Uint64
}

// Option configures NewReader and NewWorker.
type Option func(*options)

type options struct {
	log   *slog.Logger
	lease Lease
	now   func() time.Time
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(log *slog.Logger) Option { return func(o *options) { o.log = log } }

// WithLease makes a worker answer only while l confirms its membership
// (see member.guarded); without, it trusts goka's state alone.
func WithLease(l Lease) Option { return func(o *options) { o.lease = l } }

// withClock replaces time.Now (tests).
func withClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

func newOptions(opts []Option) options {
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	if o.now == nil {
		o.now = time.Now
	}
	return o
}

// NewReader reads through owners over a pooled HTTP client; win must be
// the workers' windowing.
func NewReader(owners Owners, win windows.Config, opts ...Option) *Reader {
	return &Reader{forwarder: newForwarder(owners, "usage", kafka.PartitionOf, opts), windows: win, now: time.Now}
}

func newForwarder(owners Owners, table string, partitionOf func(string, int) int32, opts []Option) forwarder {
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 500 * time.Millisecond, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: time.Second,
	}
	return forwarder{
		owners: owners, table: table, partitionOf: partitionOf, log: newOptions(opts).log,
		http:           &http.Client{Transport: tr},
		Window:         3 * time.Second,
		AttemptTimeout: time.Second,
	}
}

// Close drops the pooled connections.
func (r *forwarder) Close() { r.http.CloseIdleConnections() }

// Counters are the outcomes of forwarded reads, for /metrics:
// <table>_route_answered_total and so on.
func (r *forwarder) Counters() []metrics.Counter {
	t := r.table
	return []metrics.Counter{
		{Name: t + "_route_answered_total", Help: "Forwarded " + t + " reads answered by the owning workers: a row, rows, a series or a merged page.", Value: r.ok.Load},
		{Name: t + "_route_not_found_total", Help: "Forwarded " + t + " reads the owning worker answered with no row.", Value: r.notFound.Load},
		{Name: t + "_route_refused_total", Help: "Forwarded " + t + " reads the worker refused (not its partition, or rebalancing); retried.", Value: r.refused.Load},
		{Name: t + "_route_connect_failed_total", Help: "Forwarded " + t + " reads that reached no worker; retried.", Value: r.connFailed.Load},
		{Name: t + "_route_no_owner_total", Help: "Forwarded " + t + " read attempts that found no owner for the partition; retried.", Value: r.noOwner.Load},
		{Name: t + "_route_unavailable_total", Help: "Forwarded " + t + " reads answered 503 after the retry window found no owner to answer.", Value: r.unavailable.Load},
	}
}

// Recovered reports whether every partition has an owner to ask.
func (r *forwarder) Recovered() bool {
	m, _ := r.owners.Current()
	return m.Covered()
}

// Get returns client's usage (nil if it has none) as its partition's owner
// answers it.
func (r *Reader) Get(client string) (*activitypb.ClientUsage, error) {
	var u *activitypb.ClientUsage
	err := r.forward(client, Path, url.Values{"client": {client}}, func(status int, body []byte) (bool, error) {
		switch status {
		case http.StatusOK:
			v, err := new(codecs.ClientUsage).Decode(body)
			if err != nil {
				return false, err
			}
			r.ok.Add(1)
			u = v.(*activitypb.ClientUsage)
			return true, nil
		case http.StatusNotFound:
			r.notFound.Add(1)
			return true, nil
		}
		return false, nil
	})
	return u, err
}

// answerFunc takes the owner's answer: done when it is the read's result
// (then err is the read's error, nil on success), else the read is asked
// again (err, if any, says why; nil means the owner refused).
type answerFunc func(status int, body []byte) (done bool, err error)

// forward asks the owner of key's partition for path?query until answer
// takes an answer or Window has passed (then *Unavailable).
func (r *forwarder) forward(key, path string, query url.Values, answer answerFunc) error {
	return r.retry(fmt.Sprintf("no worker owning this key's partition answered (the %s group is rebalancing); retry later", r.table),
		func(m *ownership.Map) (bool, error) { return r.try(m, key, path, query, answer) })
}

// retry calls try with the newest owners map until it is done (its error
// is then the read's) or Window has passed, waiting for a new map or a
// backoff in between; then it gives up with *Unavailable, public being
// what the API may tell the caller.
func (r *forwarder) retry(public string, try func(*ownership.Map) (done bool, why error)) error {
	deadline := time.Now().Add(r.Window)
	backoff := 20 * time.Millisecond
	for {
		m, changed := r.owners.Current()
		done, why := try(m)
		if done {
			return why
		}
		r.owners.Refresh()
		left := time.Until(deadline)
		if left <= 0 {
			r.unavailable.Add(1)
			return &Unavailable{Detail: why.Error(), After: time.Second, public: public, table: r.table}
		}
		select {
		case <-changed:
		case <-time.After(min(backoff, left)):
		}
		backoff = min(2*backoff, 250*time.Millisecond)
	}
}

// try asks the owner once; not done means "ask again", and the error why.
func (r *forwarder) try(m *ownership.Map, key, path string, query url.Values, answer answerFunc) (bool, error) {
	if m == nil || m.Partitions == 0 {
		r.noOwner.Add(1)
		return false, fmt.Errorf("owners of the %s partitions are not known yet", r.table)
	}
	p := r.partitionOf(key, m.Partitions)
	o, ok := m.Owner(p)
	if !ok {
		r.noOwner.Add(1)
		return false, fmt.Errorf("partition %d has no owner with a query address (group %s)", p, m.State)
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+o.Addr+path+"?"+query.Encode(), nil)
	if err != nil {
		return false, err
	}
	resp, err := r.http.Do(req)
	if err != nil {
		r.connFailed.Add(1)
		return false, fmt.Errorf("owner %s of partition %d: %w", o.Addr, p, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		r.connFailed.Add(1)
		return false, fmt.Errorf("owner %s of partition %d: %w", o.Addr, p, err)
	}
	// The worker must have hashed the key to the same partition, else its
	// partition count and ours differ and its answer proves nothing.
	if got := resp.Header.Get(HeaderPartition); got != strconv.Itoa(int(p)) {
		r.refused.Add(1)
		return false, fmt.Errorf("owner %s put the key in partition %q, not %d", o.Addr, got, p)
	}
	done, err := answer(resp.StatusCode, body)
	switch {
	case done:
		return true, err
	case err != nil:
		return false, fmt.Errorf("owner %s: %w", o.Addr, err)
	}
	r.refused.Add(1)
	return false, fmt.Errorf("owner %s of partition %d refused: %d %s", o.Addr, p, resp.StatusCode, clip(body))
}

func clip(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

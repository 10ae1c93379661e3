package confluent

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
)

// Registrar registers the schema in the background and keeps trying, with
// exponential backoff, while the registry is away or refuses it. Until it
// succeeds it has no Encoder and its Codec refuses to encode, so the API holds
// its events instead of writing unframed records. All methods are safe for
// concurrent use.
type Registrar struct {
	client  *sr.Client
	subject string
	log     *slog.Logger
	backoff struct{ min, max time.Duration }
	attempt time.Duration // timeout of one attempt

	registered chan struct{}
	once       sync.Once
	encoder    atomic.Pointer[Encoder]
	decoder    *Decoder
	attempts   atomic.Int64
	lastErr    atomic.Pointer[errorAt]
}

type errorAt struct {
	err error
	at  time.Time
}

// RegistrarOption configures a Registrar.
type RegistrarOption func(*Registrar)

// WithLogger logs failed attempts and the registration (default: slog.Default()).
func WithLogger(log *slog.Logger) RegistrarOption {
	return func(r *Registrar) {
		if log != nil {
			r.log = log
		}
	}
}

// WithBackoff sets the wait after the first failed attempt, doubled after
// each further one up to max (defaults 250 ms and 30 s), with jitter.
func WithBackoff(min, max time.Duration) RegistrarOption {
	return func(r *Registrar) {
		if min > 0 && max >= min {
			r.backoff.min, r.backoff.max = min, max
		}
	}
}

// WithAttemptTimeout bounds one registration attempt (default 10 s).
func WithAttemptTimeout(d time.Duration) RegistrarOption {
	return func(r *Registrar) {
		if d > 0 {
			r.attempt = d
		}
	}
}

// NewRegistrar returns a registrar of [Schema] under subject (normally
// [Subject]); call Run to start it.
func NewRegistrar(client *sr.Client, subject string, opts ...RegistrarOption) *Registrar {
	r := &Registrar{
		client:     client,
		subject:    subject,
		log:        slog.Default(),
		attempt:    10 * time.Second,
		registered: make(chan struct{}),
		decoder:    NewDecoder(nil, subject),
	}
	r.backoff.min, r.backoff.max = 250*time.Millisecond, 30*time.Second
	for _, o := range opts {
		o(r)
	}
	return r
}

// Run registers the schema, retrying until it succeeds (then it returns nil)
// or ctx ends (then it returns ctx's error). Every error is retried: the
// registry being down, and also a refusal (e.g. 409, incompatible with the
// subject's latest version), which an operator can resolve while the API
// keeps holding its events; Err reports it meanwhile. Calling Run again
// after success returns nil at once.
func (r *Registrar) Run(ctx context.Context) error {
	if r.client == nil {
		return errors.New("confluent: Registrar.Run: nil registry client")
	}
	wait := r.backoff.min
	for {
		if r.Ready() {
			return nil
		}
		err := r.try(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// Warn on attempts 1, 2, 4, 8, ...: visible, but not every 30 s for hours.
		if n := r.attempts.Load(); n&(n-1) == 0 {
			r.log.Warn("schema registry: cannot register the activity schema yet; events are held until it is",
				"subject", r.subject, "attempts", n, "err", err)
		}
		// Jitter in [wait/2, wait), so API replicas do not retry in step.
		d := wait/2 + rand.N(wait/2+1)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
		wait = min(2*wait, r.backoff.max)
	}
}

func (r *Registrar) try(ctx context.Context) error {
	r.attempts.Add(1)
	actx, cancel := context.WithTimeout(ctx, r.attempt)
	defer cancel()
	id, err := Register(actx, r.client, r.subject)
	if err == nil {
		var enc *Encoder
		if enc, err = NewEncoder(id); err == nil {
			r.once.Do(func() {
				r.decoder.Accept(id)
				r.encoder.Store(enc)
				r.lastErr.Store(nil)
				close(r.registered)
				r.log.Info("schema registry: activity schema registered", "subject", r.subject, "schema_id", id, "attempts", r.attempts.Load())
			})
			return nil
		}
	}
	r.lastErr.Store(&errorAt{err: err, at: time.Now()})
	return err
}

// Ready reports whether the schema is registered and events can be framed.
func (r *Registrar) Ready() bool { return r.encoder.Load() != nil }

// Registered is closed once the schema is registered; a publisher can wait on
// it before it takes events from its queue.
func (r *Registrar) Registered() <-chan struct{} { return r.registered }

// Encoder frames events with the registered schema id; nil until Ready.
func (r *Registrar) Encoder() *Encoder { return r.encoder.Load() }

// SchemaID is the registered schema id; 0 until Ready.
func (r *Registrar) SchemaID() int {
	if e := r.encoder.Load(); e != nil {
		return e.SchemaID()
	}
	return 0
}

// Err is the error of the last failed attempt while not Ready; nil once
// registered (and before the first attempt).
func (r *Registrar) Err() error {
	if r.Ready() {
		return nil
	}
	if e := r.lastErr.Load(); e != nil {
		return e.err
	}
	return nil
}

// Codec is the goka codec of the activity emitter: it frames with the
// registered schema id and fails with ErrNotRegistered before, so the
// emitter never writes an unframed record.
func (r *Registrar) Codec() *Codec {
	return &Codec{encoder: r.Encoder, decoder: r.decoder}
}

// RegistrarStatus is the registrar's state for a readiness report.
type RegistrarStatus struct {
	Subject   string    `json:"subject"`
	Ready     bool      `json:"ready"`
	SchemaID  int       `json:"schema_id,omitempty"`
	Attempts  int64     `json:"attempts"`
	LastError string    `json:"last_error,omitempty"`
	FailedAt  time.Time `json:"failed_at,omitzero"`
}

// Status is the registrar's state now.
func (r *Registrar) Status() RegistrarStatus {
	s := RegistrarStatus{Subject: r.subject, Ready: r.Ready(), SchemaID: r.SchemaID(), Attempts: r.attempts.Load()}
	if e := r.lastErr.Load(); e != nil && !s.Ready {
		s.LastError, s.FailedAt = e.err.Error(), e.at
	}
	return s
}

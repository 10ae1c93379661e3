package middleware

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/quotas/enforce"
)

// UnmatchedRoute is the route of requests no route matched, so arbitrary
// paths cannot grow Inarious' tables.
const UnmatchedRoute = httpx.UnmatchedRoute

// DefaultRequestIDHeader carries request ids unless WithRequestIDHeader says otherwise.
const DefaultRequestIDHeader = "X-Request-Id"

// Option configures New, NewWithBuffer and NewBuffer; each takes the
// options that concern it.
type Option func(*config)

type config struct {
	log *slog.Logger
	// The buffer's.
	bufferSize       int
	holdUntil        <-chan struct{}
	produceOnPublish bool
	stallAfter       time.Duration
	// The handler's.
	service         string
	client          func(*http.Request) string
	address         func(*http.Request) (host, port string)
	setClient       bool
	requestIDHeader string
	quotas          *quotaConfig
}

func newConfig(opts []Option) config {
	c := config{log: slog.Default(), bufferSize: DefaultBufferSize, requestIDHeader: DefaultRequestIDHeader}
	for _, opt := range opts {
		opt(&c)
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	return c
}

// WithLogger sets where the buffer reports drops and failed deliveries
// (default slog.Default()).
func WithLogger(log *slog.Logger) Option { return func(c *config) { c.log = log } }

// WithBufferSize is how many events may wait for the transport (New only;
// default DefaultBufferSize). Past it, events are dropped and counted.
func WithBufferSize(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.bufferSize = n
		}
	}
}

// HoldUntil keeps accepted events queued until ready is closed, e.g. until
// the schema registry gave the id every Kafka record must be framed with.
func HoldUntil(ready <-chan struct{}) Option { return func(c *config) { c.holdUntil = ready } }

// ProduceOnPublish lets Publish hand an event to the transport itself when
// none is waiting and deliveries succeed, which spares waking the buffer's
// goroutine for every request. Only for a transport whose Produce returns
// at once while fewer than MaxInFlight events are outstanding, as both of
// this package's do. New turns it on.
func ProduceOnPublish() Option { return func(c *config) { c.produceOnPublish = true } }

// StallAfter makes the buffer unhealthy (Healthy, Degraded) once events
// waited d with no delivery acknowledged, long before the transport gives
// up on them (DefaultStallAfter unless set).
func StallAfter(d time.Duration) Option { return func(c *config) { c.stallAfter = d } }

// WithService names the service the events come from (their service
// field), so its endpoints are kept apart from other services' ones.
func WithService(name string) Option { return func(c *config) { c.service = name } }

// WithClient names the client a request is counted under, e.g. from an API
// key's owner; it is asked once the handler returned, and "" falls back to
// the address. SetClient, where allowed, takes precedence.
func WithClient(client func(r *http.Request) string) Option {
	return func(c *config) { c.client = client }
}

// WithClientAddress says where a request comes from (the event's
// client_host and client_port), e.g. behind trusted proxies. The default
// is the connection's remote address.
func WithClientAddress(address func(r *http.Request) (host, port string)) Option {
	return func(c *config) { c.address = address }
}

// WithSetClient lets handlers inside the middleware (an auth middleware,
// say) name the request's client with SetClient. It costs an allocation
// per request, so it is off unless asked for.
func WithSetClient() Option { return func(c *config) { c.setClient = true } }

// WithRequestIDHeader is the header a request id is read from, when the
// caller sent a well-formed one (1 to 64 printable ASCII characters), and
// echoed on the response in; without one, or with name "", a new id is
// made. Default DefaultRequestIDHeader; "" neither reads nor sets a header.
func WithRequestIDHeader(name string) Option {
	return func(c *config) { c.requestIDHeader = http.CanonicalHeaderKey(name) }
}

// Middleware turns each request into an activity event for its Buffer.
type Middleware struct {
	buf   *Buffer
	cfg   config
	quota *enforce.Limiter // WithQuotas'
}

// New starts a buffer over t and returns the middleware that fills it;
// Close flushes and stops both.
func New(t Transport, opts ...Option) *Middleware {
	c := newConfig(opts)
	c.produceOnPublish = true
	return &Middleware{buf: newBuffer(t, c.bufferSize, c), cfg: c, quota: newQuotaLimiter(c)}
}

// NewWithBuffer is a middleware over a buffer that others fill too (Inarious'
// API puts ingested batches in the one its middleware fills).
func NewWithBuffer(buf *Buffer, opts ...Option) *Middleware {
	c := newConfig(opts)
	return &Middleware{buf: buf, cfg: c, quota: newQuotaLimiter(c)}
}

// Buffer is the buffer m fills.
func (m *Middleware) Buffer() *Buffer { return m.buf }

// Stats are the buffer's counters: accepted, delivered, dropped and more.
func (m *Middleware) Stats() Stats { return m.buf.Stats() }

// Close stops accepting events and waits, until ctx ends, for every
// accepted event to be delivered. Call it after the HTTP server's Shutdown.
func (m *Middleware) Close(ctx context.Context) error {
	if m.cfg.quotas != nil {
		m.cfg.quotas.client.CloseIdleConnections()
	}
	return m.buf.Close(ctx)
}

// Wrap records every request next serves. The route is the template
// gorilla/mux matched (use router.Use(m.Wrap), so the route is known) or
// the pattern Go's ServeMux matched (wrap the ServeMux), else UnmatchedRoute.
func (m *Middleware) Wrap(next http.Handler) http.Handler { return m.WrapRoute("", next) }

// WrapRoute records every request next serves as a call of route, a
// template such as "/users/{id}"; "" finds it as Wrap does.
func (m *Middleware) WrapRoute(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.serve(route, next, w, r)
	})
}

// identityKey holds, in a request's context, the *identity SetClient sets.
type identityKey struct{}

// identity is the client a request is counted under when not its address.
type identity struct{ client string }

// SetClient counts r under client (the event's client and Kafka key)
// instead of its address, which client_host and client_port still carry.
// Call it on the request's goroutine before the handler returns, inside a
// middleware made WithSetClient; elsewhere it does nothing.
func SetClient(r *http.Request, client string) {
	if id, ok := r.Context().Value(identityKey{}).(*identity); ok {
		id.client = client
	}
}

// activityEvent is an event and its request time in one allocation.
type activityEvent struct {
	ev          activitypb.BackendApiActivity
	requestTime timestamppb.Timestamp
}

func (m *Middleware) serve(route string, next http.Handler, w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := m.requestID(r)
	if m.cfg.requestIDHeader != "" {
		// The name is canonical: no Set, which canonicalizes it again.
		w.Header()[m.cfg.requestIDHeader] = []string{id}
	}
	// The recorder is the outermost, so inner middlewares can share it
	// (httpx.Recorder), with the start and route on it.
	rec := httpx.NewStatusRecorder(w)
	rec.Start, rec.Route = start, route
	var who *identity // only when asked for, or it costs an allocation
	if m.cfg.setClient {
		who = new(identity)
		r = r.WithContext(context.WithValue(r.Context(), identityKey{}, who))
	}
	if m.quota == nil || m.allow(rec, r, route, next) {
		next.ServeHTTP(rec, r)
	}

	var host, port string
	if m.cfg.address != nil {
		host, port = m.cfg.address(r)
	} else {
		host, port = remoteAddress(r)
	}
	client := host
	if m.cfg.client != nil {
		if c := m.cfg.client(r); c != "" {
			client = c
		}
	}
	if who != nil && who.client != "" {
		client = who.client
	}
	if route == "" {
		route = RouteTemplate(r)
	}
	a := &activityEvent{requestTime: timestamppb.Timestamp{Seconds: start.Unix(), Nanos: int32(start.Nanosecond())}}
	ev := &a.ev
	ev.ClientHost = host
	ev.ClientPort = port
	ev.Endpoint = r.URL.Path
	ev.HttpMethod = r.Method
	ev.HttpStatus = int32(rec.Status())
	ev.DurationUs = time.Since(start).Microseconds()
	ev.RequestTime = &a.requestTime // as timestamppb.New(start) sets it
	ev.Route = route
	ev.RequestId = id
	ev.Client = client
	ev.Service = m.cfg.service
	m.buf.Publish(ev)
}

// remoteAddress is the connection's peer.
func remoteAddress(r *http.Request) (host, port string) {
	host, port, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr, ""
	}
	return host, port
}

// RouteTemplate is the template of the route r matched: gorilla/mux's
// ("/users/{id}"), else the path of the pattern Go's ServeMux matched
// ("GET /users/{id}" gives "/users/{id}"), else UnmatchedRoute.
func RouteTemplate(r *http.Request) string {
	if t := httpx.RouteTemplate(r); t != "" {
		return t
	}
	if p := patternPath(r.Pattern); p != "" {
		return p
	}
	return UnmatchedRoute
}

// patternPath is the path of a ServeMux pattern, [METHOD ][HOST]/[PATH]:
// from the first slash; "" if none.
func patternPath(p string) string {
	if i := strings.IndexByte(p, '/'); i >= 0 {
		return p[i:]
	}
	return ""
}

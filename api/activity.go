package api

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/httpx"
)

const requestIDHeader = "X-Request-Id"

// requestID keeps a caller's well-formed id, so a request can be traced
// across services, and makes one otherwise.
func requestID(r *http.Request) string {
	if id := r.Header.Get(requestIDHeader); id != "" && len(id) <= 64 && isToken(id) {
		return id
	}
	return newRequestID()
}

// requestIDs numbers the ids this process makes. Multiplying by an odd
// constant is a bijection on uint64, so ids are unique for 2^64 requests,
// and the random start keeps processes apart: no crypto/rand read per
// request. Request ids name requests; they are no secret.
var requestIDs = func() *atomic.Uint64 {
	var n atomic.Uint64
	var b [8]byte
	_, _ = rand.Read(b[:])
	n.Store(binary.LittleEndian.Uint64(b[:]))
	return &n
}()

func newRequestID() string {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], requestIDs.Add(1)*0x9e3779b97f4a7c15)
	var b [16]byte
	hex.Encode(b[:], n[:])
	return string(b[:])
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// identityKey holds, in a request's context, the *identity that
// recordActivity reads once the handler is done.
type identityKey struct{}

// identity is the client a request is counted under when not its address.
type identity struct{ client string }

// setClient counts the request under client (the activity event's Client and
// Kafka key) instead of its network address, which ClientHost and ClientPort
// still carry. The auth middleware inside the router calls it; it must be
// called on the request's goroutine before the handler returns. Outside the
// activity middleware it does nothing.
func setClient(r *http.Request, client string) {
	if id, ok := r.Context().Value(identityKey{}).(*identity); ok {
		id.client = client
	}
}

// activityEvent is an event and its request time in one allocation.
type activityEvent struct {
	ev          activitypb.BackendApiActivity
	requestTime timestamppb.Timestamp
}

// recordActivity emits one activity event per request once the response is
// written, when status and duration are known. Its status recorder is the
// outermost, so inner middlewares can share it (httpx.Recorder), with the
// start and route on it. route is the template of the route next serves,
// "" to ask mux.
func (s *Server) recordActivity(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := requestID(r)
		// requestIDHeader is canonical: no Set, which canonicalizes it again.
		w.Header()[requestIDHeader] = []string{id}
		rec := httpx.NewStatusRecorder(w)
		rec.Start, rec.Route = start, route
		var who *identity // only with API keys, or it costs an allocation
		if s.countUnderKey {
			who = new(identity)
			r = r.WithContext(context.WithValue(r.Context(), identityKey{}, who))
		}
		next.ServeHTTP(rec, r)

		host, port := s.clients.Resolve(r)
		client := host
		if who != nil && who.client != "" {
			client = who.client
		}
		template, status := route, rec.Status()
		if template == "" {
			template = httpx.RouteTemplate(r)
		}
		if template == "" {
			template = httpx.UnmatchedRoute
		}
		a := &activityEvent{requestTime: timestamppb.Timestamp{Seconds: start.Unix(), Nanos: int32(start.Nanosecond())}}
		ev := &a.ev
		ev.ClientHost = host
		ev.ClientPort = port
		ev.Endpoint = r.URL.Path
		ev.HttpMethod = r.Method
		ev.HttpStatus = int32(status)
		ev.DurationUs = time.Since(start).Microseconds()
		ev.RequestTime = &a.requestTime // as timestamppb.New(start) sets it
		ev.Route = template
		ev.RequestId = id
		ev.Client = client
		s.publisher.Publish(ev)
	})
}

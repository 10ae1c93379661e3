// Package otlpin ingests other producers' API calls: OpenTelemetry traces
// over OTLP/HTTP (POST /v1/traces, protobuf or JSON, optionally gzipped)
// or OTLP/gRPC (NewGRPCServer), each server span becoming an activity
// event on the Users topic, and batches of activity events as JSON
// (POST /events). Either way another
// API's calls are counted as Inarious' own. See the README, "Send us your
// API's calls".
package otlpin

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/auth"
	"github.com/inarious/inarious/internal/httpx"
	"github.com/inarious/inarious/internal/problem"
)

// Path is where OTLP/HTTP exporters send traces (the spec's default).
const Path = "/v1/traces"

// The request (and response) encodings OTLP/HTTP defines.
const (
	ContentTypeProtobuf = "application/x-protobuf"
	ContentTypeJSON     = "application/json"
)

// DefaultMaxBodyBytes caps a request's body as sent, as the API's other
// bodies (--max-body-bytes). An SDK's batch of 512 spans is a few hundred
// KiB: exporters should compress, or the limit be raised.
const DefaultMaxBodyBytes int64 = 64 << 10

// inflateRatio bounds what a gzipped body may inflate to, as a multiple of
// the body limit, so a small compressed bomb cannot fill memory.
const inflateRatio = 16

// RetryAfter is what 429 and 503 ask the exporter to wait before it
// sends the batch again.
const RetryAfter = time.Second

// Publisher takes a batch of events whole or not at all: a refused batch is
// retried whole by the exporter, so none of it may have been taken.
type Publisher interface {
	PublishAll(evs []*activitypb.BackendApiActivity) bool
	// Healthy is false while deliveries to Kafka fail.
	Healthy() bool
}

// Option configures Routes.
type Option func(*receiver)

// WithClientAttribute counts calls under this span attribute (e.g.
// enduser.id) instead of the client's address, where a span has it.
func WithClientAttribute(name string) Option {
	return func(r *receiver) { r.clientAttr = name }
}

// WithMaxBodyBytes changes the body limit; larger bodies get 413.
func WithMaxBodyBytes(n int64) Option {
	return func(r *receiver) {
		if n > 0 {
			r.maxBody = n
		}
	}
}

// WithLogger sets where refused batches are logged (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(r *receiver) {
		if l != nil {
			r.log = l
		}
	}
}

type receiver struct {
	pub        Publisher
	clientAttr string
	maxBody    int64
	log        *slog.Logger
	keys       *auth.Keys
	// working holds a token per request decoding and publishing a batch.
	working chan struct{}
}

// Routes are the OTLP/HTTP traces receiver and the JSON batch ingest,
// publishing through pub.
func Routes(pub Publisher, opts ...Option) []httpx.Route {
	r := newReceiver(pub, opts)
	return []httpx.Route{
		{Method: http.MethodPost, Path: Path, Scope: auth.EventsWrite, Handler: r},
		{Method: http.MethodPost, Path: EventsPath, Scope: auth.EventsWrite, Handler: batchReceiver{r}},
	}
}

func newReceiver(pub Publisher, opts []Option) *receiver {
	r := &receiver{pub: pub, maxBody: DefaultMaxBodyBytes, log: slog.Default(), working: make(chan struct{}, runtime.GOMAXPROCS(0))}
	for _, o := range opts {
		o(r)
	}
	return r
}

var (
	errTooLarge  = errors.New("body too large")
	errNotObject = errors.New("not one JSON object")
)

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if cs, ok := params["charset"]; err != nil || (mediaType != ContentTypeProtobuf && mediaType != ContentTypeJSON) ||
		(ok && !strings.EqualFold(cs, "utf-8")) {
		problem.Write(w, r, http.StatusUnsupportedMediaType,
			"Content-Type must be "+ContentTypeProtobuf+" or "+ContentTypeJSON+" (charset utf-8)")
		return
	}
	body, status, detail := rc.readBody(w, r)
	if status != 0 {
		problem.Write(w, r, status, detail)
		return
	}
	if !rc.startWork(r) {
		return
	}
	defer rc.endWork()
	req := ptraceotlp.NewExportRequest()
	if mediaType == ContentTypeJSON {
		// pdata reads the first value and ignores what follows, and takes
		// null for an empty request; a JSON body is one object.
		if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' || !json.Valid(t) {
			err = errNotObject
		} else {
			err = req.UnmarshalJSON(body)
		}
	} else {
		err = req.UnmarshalProto(body)
	}
	if err != nil {
		problem.Write(w, r, http.StatusBadRequest, "the body is no OTLP ExportTraceServiceRequest in "+mediaType)
		return
	}
	// A batch is a millisecond or more of CPU: let the goroutines that
	// deliver to Kafka run between its steps (see startWork).
	runtime.Gosched()
	res := Convert(req.Traces(), rc.clientAttr)
	runtime.Gosched()
	if len(res.Events) > 0 && !rc.pub.PublishAll(res.Events) {
		// Kafka away: 503; only busy: 429. Both are retried by exporters.
		status := http.StatusServiceUnavailable
		if rc.pub.Healthy() {
			status = http.StatusTooManyRequests
		}
		rc.log.Warn("otlp batch refused: the event queue has no room", "spans", len(res.Events), "status", status)
		w.Header().Set("Retry-After", strconv.Itoa(int(RetryAfter/time.Second)))
		problem.Write(w, r, status, "the event queue has no room for this batch; send it again later")
		return
	}
	resp := ptraceotlp.NewExportResponse()
	if res.Rejected > 0 {
		resp.PartialSuccess().SetRejectedSpans(res.Rejected)
		resp.PartialSuccess().SetErrorMessage(res.Reason)
	}
	var out []byte
	if mediaType == ContentTypeJSON {
		out, err = resp.MarshalJSON()
	} else {
		out, err = resp.MarshalProto()
	}
	if err != nil {
		rc.log.Error("otlp response", "err", err)
		problem.Write(w, r, http.StatusInternalServerError, "could not encode the response")
		return
	}
	w.Header().Set("Content-Type", mediaType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// startWork waits until fewer requests than the process has cores decode
// and publish batches, or reports false when r's client went away. On one
// core, Go's scheduler would otherwise give each of the requests decoding
// a batch the same share as the few goroutines that deliver events to
// Kafka and so make room in the event queue: deliveries fall behind, the
// queue fills, and batches are refused (429) after being decoded. With
// the goroutines' turns between a batch's steps (runtime.Gosched), 512
// spans per export went from 70 % refused to none (BENCHMARKS.md, "Ingest").
func (rc *receiver) startWork(r *http.Request) bool {
	select {
	case rc.working <- struct{}{}:
		return true
	case <-r.Context().Done():
		return false
	}
}

func (rc *receiver) endWork() { <-rc.working }

// readBody reads the body within the limits, inflating a gzipped one; a
// non-zero status says why it could not.
func (rc *receiver) readBody(w http.ResponseWriter, r *http.Request) (body []byte, status int, detail string) {
	body, err := readAtMost(http.MaxBytesReader(w, r.Body, rc.maxBody), rc.maxBody, r.ContentLength)
	if err != nil {
		status, detail = bodyError(err, rc.maxBody)
		return nil, status, detail
	}
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		return body, 0, ""
	case "gzip":
		zr, _ := gzipReaders.Get().(*gzip.Reader)
		if zr == nil {
			zr = new(gzip.Reader)
		}
		defer gzipReaders.Put(zr)
		if err := zr.Reset(bytes.NewReader(body)); err != nil {
			return nil, http.StatusBadRequest, "the body is not valid gzip"
		}
		// A gzip member ends with its inflated size (mod 4 GiB): a hint only.
		var inflated int64
		if len(body) >= 4 {
			inflated = int64(binary.LittleEndian.Uint32(body[len(body)-4:]))
		}
		if body, err = readAtMost(zr, rc.maxBody*inflateRatio, inflated); err != nil {
			status, detail = bodyError(err, rc.maxBody*inflateRatio)
			return nil, status, detail
		}
		return body, 0, ""
	default:
		return nil, http.StatusUnsupportedMediaType, "Content-Encoding must be gzip or none, not " + enc
	}
}

// gzipReaders are inflaters to reuse: each holds some 40 KiB of state.
var gzipReaders sync.Pool

// bodyError answers a failed read: 413 past limit, else 400.
func bodyError(err error, limit int64) (int, string) {
	var mbe *http.MaxBytesError
	if errors.Is(err, errTooLarge) || errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge, "the body is larger than " + strconv.FormatInt(limit, 10) + " bytes"
	}
	return http.StatusBadRequest, "the body could not be read (truncated, or not valid gzip)"
}

// readAtMost reads all of in, or errTooLarge past limit bytes. sizeHint,
// when positive, is what in is expected to hold (Content-Length), so the
// body is read into one buffer of its size rather than a growing one.
func readAtMost(in io.Reader, limit, sizeHint int64) ([]byte, error) {
	size := int64(512)
	if sizeHint > 0 {
		size = min(sizeHint, limit) + 1 // + 1: room to see the end without growing
	}
	b := make([]byte, 0, size)
	in = io.LimitReader(in, limit+1)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := in.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if int64(len(b)) > limit {
		return nil, errTooLarge
	}
	return b, nil
}

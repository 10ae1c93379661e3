package loadgen

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// The ingest scenarios' defaults and the service their items belong to.
const (
	DefaultOTLPBatch   = 512 // an OTel SDK's BatchSpanProcessor sends up to 512 spans
	DefaultEventsBatch = 100
	LoadService        = "inarious-load"
	// ingestRoutes is how many routes the ingest items spread over.
	ingestRoutes = 8
)

// batchSize is how many items one request of sc carries.
func (c *Config) batchSize(sc Scenario) int {
	if c.Batch > 0 {
		return c.Batch
	}
	if sc == OTLP {
		return DefaultOTLPBatch
	}
	return DefaultEventsBatch
}

// isIngest tells the scenarios whose requests carry items counted for
// other clients than the caller.
func isIngest(sc Scenario) bool { return sc == OTLP || sc == Events }

// batchBody makes one scenario's request bodies. Every item of every body
// has a new id (span id or event id) and the time of the request, so a
// server that deduplicates or windows by time sees realistic traffic; the
// template is encoded once and only the ids and times are written per
// request, so the load generator spends its core on sending, not encoding.
type batchBody struct {
	sc     Scenario
	n      int
	prefix [8]byte // the trace ids' and event ids' per-worker random half
	seq    uint64  // items made so far
	tmpl   []byte
	// Offsets in tmpl of each item's id (a span's trace id) and time (a
	// span's start); a span's id and end time too.
	idAt, timeAt, spanAt, endAt []int
	gz                          *gzip.Writer
	gzBuf                       bytes.Buffer
}

// Template values, distinct from anything else in the body, found again
// after encoding to learn where each span's ids and times are.
func templateTraceID(j int) pcommon.TraceID {
	var id pcommon.TraceID
	copy(id[:], "\xfeTRACE\xfe")
	binary.BigEndian.PutUint64(id[8:], 0xfeed0000_00000000|uint64(j))
	return id
}

func templateSpanID(j int) pcommon.SpanID {
	var id pcommon.SpanID
	binary.BigEndian.PutUint64(id[:], 0xfdfd5a5a_00000000|uint64(j))
	return id
}

func templateStart(j int) time.Time { return time.Unix(0, 0x7a7a_0000_0000_0000|int64(j)<<8) }

// spanDuration is every span's length.
const spanDuration = 1500 * time.Microsecond

func newBatchBody(sc Scenario, n int, clientOf func(j int) string, gzipped bool) (*batchBody, error) {
	b := &batchBody{sc: sc, n: n}
	if _, err := rand.Read(b.prefix[:]); err != nil {
		return nil, err
	}
	var err error
	if sc == OTLP {
		err = b.otlpTemplate(clientOf)
	} else {
		err = b.eventsTemplate(clientOf)
	}
	if err != nil {
		return nil, err
	}
	if gzipped {
		b.gz, _ = gzip.NewWriterLevel(&b.gzBuf, gzip.BestSpeed)
	}
	return b, nil
}

// OTLPExport is an export of n server spans as otelhttp records them
// (eleven attributes), span j for client clientOf(j) on one of 8 routes,
// with ids ids(j), starting at start(j).
func OTLPExport(n int, clientOf func(j int) string, ids func(j int) (pcommon.TraceID, pcommon.SpanID), start func(j int) time.Time) ptraceotlp.ExportRequest {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", LoadService)
	rs.Resource().Attributes().PutStr("telemetry.sdk.language", "go")
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName("go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp")
	spans := ss.Spans()
	spans.EnsureCapacity(n)
	for j := range n {
		route := BenchRoute(j % ingestRoutes)
		sp := spans.AppendEmpty()
		tid, sid := ids(j)
		sp.SetTraceID(tid)
		sp.SetSpanID(sid)
		sp.SetName("GET " + route)
		sp.SetKind(ptrace.SpanKindServer)
		t := start(j)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(t))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(t.Add(spanDuration)))
		a := sp.Attributes()
		a.EnsureCapacity(11)
		a.PutStr("http.request.method", "GET")
		a.PutStr("url.scheme", "http")
		a.PutStr("server.address", "api.example.com")
		a.PutInt("server.port", 8080)
		a.PutStr("network.protocol.version", "1.1")
		a.PutStr("user_agent.original", "inarious-load")
		a.PutStr("client.address", clientOf(j))
		a.PutStr("url.path", route)
		a.PutStr("http.route", route)
		a.PutInt("http.response.status_code", 200)
		a.PutInt("http.response.body.size", 512)
	}
	return ptraceotlp.NewExportRequestFromTraces(td)
}

func (b *batchBody) otlpTemplate(clientOf func(j int) string) error {
	req := OTLPExport(b.n, clientOf, func(j int) (pcommon.TraceID, pcommon.SpanID) {
		return templateTraceID(j), templateSpanID(j)
	}, templateStart)
	var err error
	if b.tmpl, err = req.MarshalProto(); err != nil {
		return err
	}
	b.idAt, b.spanAt, b.timeAt, b.endAt = make([]int, b.n), make([]int, b.n), make([]int, b.n), make([]int, b.n)
	for j := range b.n {
		tid, sid := templateTraceID(j), templateSpanID(j)
		var start, end [8]byte
		binary.LittleEndian.PutUint64(start[:], uint64(templateStart(j).UnixNano()))
		binary.LittleEndian.PutUint64(end[:], uint64(templateStart(j).Add(spanDuration).UnixNano()))
		for _, f := range []struct {
			at   *int
			v    []byte
			what string
		}{{&b.idAt[j], tid[:], "trace id"}, {&b.spanAt[j], sid[:], "span id"}, {&b.timeAt[j], start[:], "start"}, {&b.endAt[j], end[:], "end"}} {
			if *f.at, err = findOnce(b.tmpl, f.v, 0); err != nil {
				return fmt.Errorf("otlp template: %s of span %d: %w", f.what, j, err)
			}
		}
	}
	return nil
}

// eventTimeLayout is fixed-width, so a time can be written over another.
const eventTimeLayout = "2006-01-02T15:04:05.000000000Z"

// eventItem is one event of POST /events as the Inarious middleware sends it.
func eventItem(id, client string, j int, at time.Time) string {
	route := BenchRoute(j % ingestRoutes)
	return `{"id":"` + id + `","client":"` + client + `","clientHost":"` + client +
		`","service":"` + LoadService + `","httpMethod":"GET","route":"` + route + `","endpoint":"` + route +
		`","httpStatus":200,"durationUs":"1500","requestTime":"` + at.UTC().Format(eventTimeLayout) + `"}`
}

// eventTemplateID is item j's id in the template: 32 characters, as written later.
func eventTemplateID(j int) string { return fmt.Sprintf("zzzzzzzzzzzzzzzzzzzzzzzz%08d", j) }

// eventTemplateTime is far from any real time, so it is found only where written.
var eventTemplateTime = time.Date(1999, 9, 9, 9, 9, 9, 0, time.UTC)

func (b *batchBody) eventsTemplate(clientOf func(j int) string) error {
	var body bytes.Buffer
	body.WriteByte('[')
	for j := range b.n {
		if j > 0 {
			body.WriteByte(',')
		}
		body.WriteString(eventItem(eventTemplateID(j), clientOf(j), j, eventTemplateTime))
	}
	body.WriteByte(']')
	b.tmpl = body.Bytes()
	b.idAt, b.timeAt = make([]int, b.n), make([]int, b.n)
	tm := []byte(eventTemplateTime.Format(eventTimeLayout))
	from := 0
	var err error
	for j := range b.n {
		if b.idAt[j], err = findOnce(b.tmpl, []byte(eventTemplateID(j)), from); err != nil {
			return fmt.Errorf("events template: id of item %d: %w", j, err)
		}
		if b.timeAt[j] = bytes.Index(b.tmpl[b.idAt[j]:], tm); b.timeAt[j] < 0 {
			return fmt.Errorf("events template: time of item %d not found", j)
		}
		b.timeAt[j] += b.idAt[j]
		from = b.idAt[j]
	}
	return nil
}

var errNotOnce = errors.New("not found exactly once")

// findOnce is the offset of the only occurrence of v in b at or after from.
func findOnce(b, v []byte, from int) (int, error) {
	i := bytes.Index(b[from:], v)
	if i < 0 || bytes.Contains(b[from+i+1:], v) {
		return 0, errNotOnce
	}
	return from + i, nil
}

// next is the next request's body: the template with new ids and times.
// It is valid until the following call.
func (b *batchBody) next(now time.Time) ([]byte, error) {
	var text [30]byte
	if b.sc == Events {
		now.UTC().AppendFormat(text[:0], eventTimeLayout)
	}
	ns := uint64(now.UnixNano())
	for j := range b.n {
		b.seq++
		id, at := b.idAt[j], b.timeAt[j]
		if b.sc == OTLP {
			// Trace id: the worker's prefix and the item's number; span id: the number.
			copy(b.tmpl[id:id+8], b.prefix[:])
			binary.BigEndian.PutUint64(b.tmpl[id+8:id+16], b.seq)
			binary.BigEndian.PutUint64(b.tmpl[b.spanAt[j]:], b.seq)
			binary.LittleEndian.PutUint64(b.tmpl[at:], ns)
			binary.LittleEndian.PutUint64(b.tmpl[b.endAt[j]:], ns+uint64(spanDuration))
			continue
		}
		hex.Encode(b.tmpl[id:id+16], b.prefix[:])
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], b.seq)
		hex.Encode(b.tmpl[id+16:id+32], n[:])
		copy(b.tmpl[at:at+len(text)], text[:])
	}
	if b.gz == nil {
		return b.tmpl, nil
	}
	b.gzBuf.Reset()
	b.gz.Reset(&b.gzBuf)
	if _, err := b.gz.Write(b.tmpl); err != nil {
		return nil, err
	}
	if err := b.gz.Close(); err != nil {
		return nil, err
	}
	return b.gzBuf.Bytes(), nil
}

// probeBody is a body whose n items are all client's, for a freshness
// probe: built afresh (probes are rare), with new ids.
func (b *batchBody) probeBody(client string, now time.Time) ([]byte, error) {
	all := func(int) string { return client }
	first := b.seq
	b.seq += uint64(b.n)
	var body []byte
	if b.sc == OTLP {
		req := OTLPExport(b.n, all, func(j int) (pcommon.TraceID, pcommon.SpanID) {
			var tid pcommon.TraceID
			var sid pcommon.SpanID
			copy(tid[:8], b.prefix[:])
			binary.BigEndian.PutUint64(tid[8:], first+uint64(j)+1)
			copy(sid[:], tid[8:])
			return tid, sid
		}, func(int) time.Time { return now })
		var err error
		if body, err = req.MarshalProto(); err != nil {
			return nil, err
		}
	} else {
		var buf bytes.Buffer
		buf.WriteByte('[')
		for j := range b.n {
			if j > 0 {
				buf.WriteByte(',')
			}
			buf.WriteString(eventItem(hex.EncodeToString(b.prefix[:])+fmt.Sprintf("%016x", first+uint64(j)+1), client, j, now))
		}
		buf.WriteByte(']')
		body = buf.Bytes()
	}
	if b.gz == nil {
		return body, nil
	}
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestSpeed)
	if _, err := zw.Write(body); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// contentType is what the scenario's bodies are sent as.
func (b *batchBody) contentType() string {
	if b.sc == OTLP {
		return "application/x-protobuf"
	}
	return "application/json"
}

// ingestPath is where the scenario's bodies go.
func ingestPath(sc Scenario) string {
	if sc == OTLP {
		return "/v1/traces"
	}
	return "/events"
}

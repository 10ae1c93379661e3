package otlpin

import (
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs/activitypb"
)

// parseBatchFast reads a batch in one pass when it is in the plain form a
// client library sends: every item a flat object of known fields, ASCII
// strings without escapes, integers without fraction or exponent, no
// field twice, every event valid. Anything else (ok false) is left to
// ParseBatch's general path, which reads what protojson reads and says what
// is wrong: this pass only spares the common batch the general path's cost
// (about 10 times this one's), and takes nothing the general path refuses.
func parseBatchFast(body []byte, now time.Time) (evs []*activitypb.BackendApiActivity, ok bool) {
	// One copy of the body: the events' strings are parts of it.
	p := fastParser{b: body, s: string(body)}
	p.ws()
	if !p.byte('[') {
		return nil, false
	}
	evs = make([]*activitypb.BackendApiActivity, 0, 128)
	for {
		p.ws()
		ev, ok := p.event()
		if !ok || len(evs) == MaxBatchEvents {
			return nil, false
		}
		if ev.RequestTime == nil {
			ev.RequestTime = timestamppb.New(now)
		}
		evs = append(evs, ev)
		p.ws()
		if p.byte(']') {
			break
		}
		if !p.byte(',') {
			return nil, false
		}
	}
	p.ws()
	return evs, p.i == len(p.b)
}

// The fields of an event item; the same field may not come twice, under
// either of its names.
const (
	fClientHost = iota
	fClientPort
	fEndpoint
	fHTTPMethod
	fHTTPStatus
	fDurationUs
	fRequestTime
	fRoute
	fRequestID
	fClient
	fService
	fID
)

// fastFields maps both protojson names of each field (JSON and proto) to it.
var fastFields = map[string]int{
	"clientHost": fClientHost, "client_host": fClientHost,
	"clientPort": fClientPort, "client_port": fClientPort,
	"endpoint":   fEndpoint,
	"httpMethod": fHTTPMethod, "http_method": fHTTPMethod,
	"httpStatus": fHTTPStatus, "http_status": fHTTPStatus,
	"durationUs": fDurationUs, "duration_us": fDurationUs,
	"requestTime": fRequestTime, "request_time": fRequestTime,
	"route":     fRoute,
	"requestId": fRequestID, "request_id": fRequestID,
	"client":  fClient,
	"service": fService,
	"id":      fID,
}

// stringField is where string field f of ev goes; id is the item's id.
func stringField(ev *activitypb.BackendApiActivity, f int, id *string) *string {
	return [...]*string{
		fClientHost: &ev.ClientHost, fClientPort: &ev.ClientPort, fEndpoint: &ev.Endpoint, fHTTPMethod: &ev.HttpMethod,
		fRoute: &ev.Route, fRequestID: &ev.RequestId, fClient: &ev.Client, fService: &ev.Service, fID: id,
	}[f]
}

type fastParser struct {
	b []byte
	s string // b as a string
	i int
}

func (p *fastParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// byte consumes c if it is next.
func (p *fastParser) byte(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str reads a string of printable ASCII without escapes.
func (p *fastParser) str() (string, bool) {
	if !p.byte('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return p.s[start : p.i-1], true
		case c < 0x20 || c == '\\' || c >= 0x80:
			return "", false
		}
		p.i++
	}
	return "", false
}

// plainInt parses -?(0|[1-9][0-9]*) within bits, the form protojson reads
// as that integer whether it stands as a number or inside a string.
func plainInt(s string, bits int) (int64, bool) {
	d := s
	if len(d) > 0 && d[0] == '-' {
		d = d[1:]
	}
	if len(d) == 0 || (d[0] == '0' && len(d) > 1) {
		return 0, false
	}
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, bits)
	return n, err == nil
}

// integer reads an integer field: a plain number, or one in a string.
func (p *fastParser) integer(bits int) (int64, bool) {
	if p.i < len(p.b) && p.b[p.i] == '"' {
		s, ok := p.str()
		if !ok {
			return 0, false
		}
		return plainInt(s, bits)
	}
	start := p.i
	for p.i < len(p.b) && (p.b[p.i] == '-' || (p.b[p.i] >= '0' && p.b[p.i] <= '9')) {
		p.i++
	}
	return plainInt(p.s[start:p.i], bits)
}

// Timestamp bounds as protojson checks them: 0001-01-01 to 9999-12-31.
const (
	minTimestampSeconds = -62135596800
	maxTimestampSeconds = 253402300799
)

// timestamp reads an RFC 3339 time exactly as protojson does.
func timestamp(s string) (*timestamppb.Timestamp, bool) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Unix() < minTimestampSeconds || t.Unix() > maxTimestampSeconds {
		return nil, false
	}
	frac, zone := -1, -1
	for k := len(s) - 1; k >= 0; k-- {
		if frac < 0 && s[k] == '.' {
			frac = k
		}
		if zone < 0 && (s[k] == 'Z' || s[k] == '-' || s[k] == '+') {
			zone = k
		}
	}
	if frac >= 0 && zone >= frac && zone-frac > len(".999999999") {
		return nil, false
	}
	return &timestamppb.Timestamp{Seconds: t.Unix(), Nanos: int32(t.Nanosecond())}, true
}

// event reads one item as an event, if it is plain and valid.
func (p *fastParser) event() (*activitypb.BackendApiActivity, bool) {
	if !p.byte('{') {
		return nil, false
	}
	ev := &activitypb.BackendApiActivity{}
	var seen uint32
	id := ""
	p.ws()
	if p.byte('}') {
		return nil, false // no method: rejected, and said so by the general path
	}
	for {
		p.ws()
		name, ok := p.str()
		if !ok {
			return nil, false
		}
		f, known := fastFields[name]
		if !known || seen&(1<<f) != 0 {
			return nil, false
		}
		seen |= 1 << f
		p.ws()
		if !p.byte(':') {
			return nil, false
		}
		p.ws()
		switch f {
		case fHTTPStatus:
			n, ok := p.integer(32)
			if !ok {
				return nil, false
			}
			ev.HttpStatus = int32(n)
		case fDurationUs:
			n, ok := p.integer(64)
			if !ok {
				return nil, false
			}
			ev.DurationUs = n
		case fRequestTime:
			s, ok := p.str()
			if !ok {
				return nil, false
			}
			if ev.RequestTime, ok = timestamp(s); !ok {
				return nil, false
			}
		default:
			s, ok := p.str()
			if !ok {
				return nil, false
			}
			*stringField(ev, f, &id) = s
		}
		p.ws()
		if p.byte('}') {
			break
		}
		if !p.byte(',') {
			return nil, false
		}
	}
	return ev, completeEvent(ev, id) == ""
}

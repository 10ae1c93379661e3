package codecs

import (
	"bytes"
	"errors"
	"iter"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of activitypb.ClientUsage, its endpoints map's entries,
// activitypb.EndpointUsage and google.protobuf.Timestamp.
const (
	fieldEndpoints  = 2
	fieldTotal      = 3
	fieldLastSeen   = 5
	fieldEntryKey   = 1
	fieldEntryValue = 2
	fieldCount      = 1
	fieldEpLastSeen = 2
	fieldSeconds    = 1
	fieldNanos      = 2
)

var errMalformedUsage = errors.New("codecs: malformed ClientUsage")

// UsageTotals reads total and last_seen (Unix ns, 0 if unset) from an
// encoded ClientUsage without decoding the rest. The index needs only these,
// and skipping the endpoint and offset maps makes recovery of a large table
// several times cheaper than a full decode.
func UsageTotals(b []byte) (total uint64, lastSeen int64, err error) {
	total, lastSeen, _, err = parseUsage(b, false, nil)
	return total, lastSeen, err
}

// ServiceCalls is a client's calls to one service, summed over the
// service's endpoints in its row.
type ServiceCalls struct {
	// Service is the name as keys carry it (NormalService: empty for the
	// default service). It points into the encoded row.
	Service []byte
	Calls   uint64
	// LastSeen is the latest last_seen of the service's endpoints (Unix ns,
	// 0 if none has one), as UsageDoc.OfService gives it.
	LastSeen int64
}

// UsageByService is UsageTotals plus the row's calls by service, appended
// to into: one entry per service with calls, in no particular order. It
// reads each endpoint's key, count and last_seen and skips the rest; it
// allocates only when into runs out of room, and for rows of more than 16
// services (a map). Keys must be unique, as marshalling a map makes them.
func UsageByService(b []byte, into []ServiceCalls) (total uint64, lastSeen int64, services []ServiceCalls, err error) {
	return parseUsage(b, true, into)
}

// parseUsage reads total and last_seen and, withServices, sums the
// endpoints by service into list.
func parseUsage(b []byte, withServices bool, list []ServiceCalls) (total uint64, lastSeen int64, _ []ServiceCalls, err error) {
	var secs, nanos int64
	acc := serviceAcc{first: len(list), last: -1}
	f := wire{b: b}
	for num, typ := range f.fields() {
		switch {
		case num == fieldTotal && typ == protowire.VarintType:
			total = f.varint()
		case num == fieldLastSeen && typ == protowire.BytesType:
			// A repeated message field merges: later fields win.
			secs, nanos = parseTimestamp(&f, f.bytes(), secs, nanos)
		case num == fieldEndpoints && typ == protowire.BytesType && withServices:
			key, calls, seen := parseEndpointEntry(&f, f.bytes())
			if calls > 0 {
				list = acc.add(list, serviceOfKey(key), calls, seen)
			}
		default:
			f.skip(num, typ)
		}
	}
	if f.bad {
		return 0, 0, list, errMalformedUsage
	}
	return total, unixNano(secs, nanos), list, nil
}

// wire reads a message's fields. Its fast paths take one-byte tags,
// varints and lengths without a call; the rest goes to protowire. A
// malformed field sets bad and ends the message (and any message read
// with the same bad flag).
type wire struct {
	b   []byte
	bad bool
}

// fields are the message's fields, up to its end or a malformed one.
func (w *wire) fields() iter.Seq2[protowire.Number, protowire.Type] {
	return func(yield func(protowire.Number, protowire.Type) bool) {
		for {
			num, typ, ok := w.next()
			if !ok || !yield(num, typ) {
				return
			}
		}
	}
}

// unixNano is a Timestamp's seconds and nanos in Unix nanoseconds; 0 for
// an unset one.
func unixNano(secs, nanos int64) int64 {
	if secs == 0 && nanos == 0 {
		return 0
	}
	return secs*1e9 + nanos
}

func (w *wire) fail() {
	w.bad, w.b = true, nil
}

func (w *wire) next() (protowire.Number, protowire.Type, bool) {
	if len(w.b) > 0 && w.b[0] >= 1<<3 && w.b[0] < 0x80 { // field numbers 1-15
		t := w.b[0]
		w.b = w.b[1:]
		return protowire.Number(t >> 3), protowire.Type(t & 7), true
	}
	return w.nextSlow()
}

func (w *wire) nextSlow() (protowire.Number, protowire.Type, bool) {
	if len(w.b) == 0 {
		return 0, 0, false
	}
	num, typ, n := protowire.ConsumeTag(w.b)
	if n < 0 {
		w.fail()
		return 0, 0, false
	}
	w.b = w.b[n:]
	return num, typ, true
}

func (w *wire) varint() uint64 {
	v, n := varintAt(w.b, 0)
	if n < 0 {
		w.fail()
		return 0
	}
	w.b = w.b[n:]
	return v
}

func (w *wire) bytes() []byte {
	if len(w.b) > 0 && w.b[0] < 0x80 && int(w.b[0]) < len(w.b) { // a length below 128
		n := 1 + int(w.b[0])
		v := w.b[1:n:n]
		w.b = w.b[n:]
		return v
	}
	return w.bytesSlow()
}

func (w *wire) bytesSlow() []byte {
	v, n := protowire.ConsumeBytes(w.b)
	if n < 0 {
		w.fail()
		return nil
	}
	w.b = w.b[n:]
	return v
}

func (w *wire) skip(num protowire.Number, typ protowire.Type) {
	n := protowire.ConsumeFieldValue(num, typ, w.b)
	if n < 0 {
		w.fail()
		return
	}
	w.b = w.b[n:]
}

// serviceOfKey is the service of an endpoint key as SplitEndpointKey parts
// it, empty for the default service.
func serviceOfKey(key []byte) []byte {
	// The first space is near: after a method or a service name. A loop
	// costs less than a call here.
	for i, c := range key {
		if c == ' ' {
			if i > 0 && key[i-1] == ':' {
				return key[:i-1]
			}
			break
		}
	}
	return key[:0]
}

// parseEndpointEntry reads one entry of the endpoints map: its key, and its
// EndpointUsage's count and last_seen (Unix ns, 0 if unset). A malformed
// entry sets outer's bad.
func parseEndpointEntry(outer *wire, entry []byte) (key []byte, count uint64, lastSeen int64) {
	if key, count, lastSeen, ok := endpointEntryAsWritten(entry); ok {
		return key, count, lastSeen
	}
	var value []byte
	f := wire{b: entry}
	for num, typ := range f.fields() {
		switch {
		case num == fieldEntryKey && typ == protowire.BytesType:
			key = f.bytes()
		case num == fieldEntryValue && typ == protowire.BytesType:
			value = f.bytes() // a map entry's value is replaced, not merged
		default:
			f.skip(num, typ)
		}
	}
	var secs, nanos int64
	v := wire{b: value, bad: f.bad}
	for num, typ := range v.fields() {
		switch {
		case num == fieldCount && typ == protowire.VarintType:
			count = v.varint()
		case num == fieldEpLastSeen && typ == protowire.BytesType:
			secs, nanos = parseTimestamp(&v, v.bytes(), secs, nanos)
		default:
			v.skip(num, typ)
		}
	}
	if v.bad {
		outer.fail()
		return nil, 0, 0
	}
	return key, count, unixNano(secs, nanos)
}

// endpointEntryAsWritten reads an entry laid out as the table writes it
// (vtprotobuf: fields in order, zero values left out, short lengths), in
// a few branches and no calls for most of it: every write of the table
// reads every entry of the row. ok is false for any other layout, which
// the general parse reads instead.
func endpointEntryAsWritten(e []byte) (key []byte, count uint64, lastSeen int64, ok bool) {
	// One-byte tags: field number and wire type.
	const (
		keyTag      = byte(fieldEntryKey<<3 | protowire.BytesType)
		valueTag    = byte(fieldEntryValue<<3 | protowire.BytesType)
		countTag    = byte(fieldCount<<3 | protowire.VarintType)
		lastSeenTag = byte(fieldEpLastSeen<<3 | protowire.BytesType)
		windowTag   = byte(3<<3 | protowire.VarintType) // EndpointUsage.window_id
		classesTag  = byte(4<<3 | protowire.BytesType)  // EndpointUsage.status_classes, packed
	)
	if len(e) < 2 || e[0] != keyTag || e[1] >= 0x80 {
		return nil, 0, 0, false
	}
	k := 2 + int(e[1])
	if k+2 > len(e) || e[k] != valueTag || e[k+1] >= 0x80 || k+2+int(e[k+1]) != len(e) {
		return nil, 0, 0, false
	}
	key, v := e[2:k], e[k+2:]
	i := 0
	if i < len(v) && v[i] == countTag {
		if count, i = varintAt(v, i+1); i < 0 {
			return nil, 0, 0, false
		}
	}
	var lastSeenNs int64
	if i < len(v) && v[i] == lastSeenTag {
		if i+1 >= len(v) || v[i+1] >= 0x80 || i+2+int(v[i+1]) > len(v) {
			return nil, 0, 0, false
		}
		ts := v[i+2 : i+2+int(v[i+1])]
		i += 2 + len(ts)
		secs, nanos, ok := timestampAsWritten(ts)
		if !ok {
			return nil, 0, 0, false
		}
		lastSeenNs = unixNano(secs, nanos)
	}
	if i < len(v) && v[i] == windowTag {
		if _, i = varintAt(v, i+1); i < 0 {
			return nil, 0, 0, false
		}
	}
	if i < len(v) && v[i] == classesTag {
		if i+1 >= len(v) || v[i+1] >= 0x80 {
			return nil, 0, 0, false
		}
		i += 2 + int(v[i+1])
	}
	if i != len(v) {
		return nil, 0, 0, false
	}
	return key, count, lastSeenNs, true
}

// timestampAsWritten reads a Timestamp laid out as written (seconds, then
// nanos, each left out when 0); ok is false for any other layout.
func timestampAsWritten(ts []byte) (secs, nanos int64, ok bool) {
	const (
		secondsTag = byte(fieldSeconds<<3 | protowire.VarintType)
		nanosTag   = byte(fieldNanos<<3 | protowire.VarintType)
	)
	j := 0
	var s, n uint64
	if j < len(ts) && ts[j] == secondsTag {
		if s, j = varintAt(ts, j+1); j < 0 {
			return 0, 0, false
		}
	}
	if j < len(ts) && ts[j] == nanosTag {
		if n, j = varintAt(ts, j+1); j < 0 {
			return 0, 0, false
		}
	}
	return int64(s), int64(int32(n)), j == len(ts)
}

// varintAt reads the varint at b[i:]: its value and the index after it,
// -1 when malformed. Small enough to be inlined: no call per varint.
func varintAt(b []byte, i int) (uint64, int) {
	var v uint64
	for shift := uint(0); i < len(b); shift += 7 {
		c := b[i]
		i++
		if shift == 63 && c > 1 {
			break // past 64 bits
		}
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, i
		}
	}
	return 0, -1
}

// serviceAcc sums endpoints by service: a row's endpoints mostly belong to
// one service or a few, so a linear search (the last service found first)
// beats a map; past maxLinearServices a map keeps a row of many services
// from costing services × endpoints comparisons.
type serviceAcc struct {
	first int // where this row's services start in the list
	last  int // index of the last service added to, or -1 before any
	index map[string]int
}

const maxLinearServices = 16

// add adds an endpoint's calls and last call to its service in list.
func (a *serviceAcc) add(list []ServiceCalls, service []byte, calls uint64, seen int64) []ServiceCalls {
	i := a.find(list, service)
	if i < 0 {
		i = len(list)
		list = append(list, ServiceCalls{Service: service})
		if a.index != nil {
			a.index[string(service)] = i
		} else if i-a.first >= maxLinearServices {
			a.index = make(map[string]int, 2*maxLinearServices)
			for j := a.first; j < len(list); j++ {
				a.index[string(list[j].Service)] = j
			}
		}
	}
	s := &list[i]
	s.Calls += calls
	s.LastSeen = max(s.LastSeen, seen)
	a.last = i
	return list
}

func (a *serviceAcc) find(list []ServiceCalls, service []byte) int {
	if a.last >= 0 && bytes.Equal(list[a.last].Service, service) {
		return a.last
	}
	if a.index != nil {
		if i, ok := a.index[string(service)]; ok {
			return i
		}
		return -1
	}
	for i := a.first; i < len(list); i++ {
		if bytes.Equal(list[i].Service, service) {
			return i
		}
	}
	return -1
}

// parseTimestamp merges an encoded Timestamp into secs and nanos; a
// malformed one sets outer's bad.
func parseTimestamp(outer *wire, b []byte, secs, nanos int64) (int64, int64) {
	if secs == 0 && nanos == 0 { // nothing to merge with: the first one
		if s, n, ok := timestampAsWritten(b); ok {
			return s, n
		}
	}
	f := wire{b: b}
	for num, typ := range f.fields() {
		switch {
		case num == fieldSeconds && typ == protowire.VarintType:
			secs = int64(f.varint())
		case num == fieldNanos && typ == protowire.VarintType:
			nanos = int64(int32(f.varint()))
		default:
			f.skip(num, typ)
		}
	}
	if f.bad {
		outer.fail()
	}
	return secs, nanos
}

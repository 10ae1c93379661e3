package usage

import (
	"time"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/windows"
)

// Result is what Apply did with an event.
type Result struct {
	// Applied is false for a replay: the row is unchanged.
	Applied bool
	// Late counts the granularities whose bucket of the event had closed:
	// the event is not in them (it is in the all-time counts).
	Late int
	// Closed are the buckets the event's stream time closed, removed from
	// the open ones: their final values go to the windowed topics.
	Closed []*activitypb.WindowBucket
	// Endpoint is the window id of the endpoint the event was counted
	// under in the buckets (0 without windows).
	Endpoint uint32
}

// eventTime is the event's request time, or the processing time now when it
// has none, or one before the Unix epoch, or one more than the grace period
// ahead of now: a producer with a clock that far ahead would otherwise push
// the client's stream time past buckets that are still filling.
func eventTime(ev *activitypb.BackendApiActivity, now time.Time, grace time.Duration) int64 {
	rt := ev.GetRequestTime()
	if rt == nil {
		return now.UnixNano()
	}
	t := rt.GetSeconds()*int64(time.Second) + int64(rt.GetNanos())
	if rt.GetSeconds() < 0 || t > now.Add(grace).UnixNano() {
		return now.UnixNano()
	}
	return t
}

// window adds one event, at unixNano of endpoint ep with status class
// (noStatus: none), to the open buckets of usage, advances the client's
// stream time and closes the buckets it passed (end + grace <= stream time,
// as Kafka Streams closes windows). pos is the event's position, kept with
// what it closed.
func window(usage *activitypb.ClientUsage, w windows.Config, unixNano int64, ep *activitypb.EndpointUsage, class uint32, pos Position, res *Result) {
	if ep.WindowId == 0 {
		usage.LastWindowId++
		ep.WindowId = usage.LastWindowId
	}
	if unixNano > usage.StreamTimeUnixNano {
		usage.StreamTimeUnixNano = unixNano
	}
	stream := usage.StreamTimeUnixNano
	grace := int64(w.Grace)
	for _, s := range w.Specs {
		start := windows.StartUnix(unixNano, s.Step)
		if start*int64(time.Second)+int64(s.Step)+grace <= stream {
			res.Late++ // its bucket has closed and was emitted
			continue
		}
		b := openBucket(usage, int64(s.Step/time.Second), start)
		if !b.StatusClassed {
			classify(b)
		}
		add(b, ep.WindowId)
		if class != codecs.Class2xx { // 2xx calls get no pair: they are the endpoint's count minus its pairs
			addCount(&b.StatusKeys, &b.StatusCounts, ep.WindowId<<classBits|class)
		}
	}
	closeBuckets(usage, w.Grace, pos, res)
}

// closeBuckets moves the open buckets whose end + grace the stream time has
// reached into res.Closed; the row keeps them as last_closed until the next
// close, for a replay of this event and for readers.
func closeBuckets(usage *activitypb.ClientUsage, grace time.Duration, pos Position, res *Result) {
	stream := usage.StreamTimeUnixNano
	open := usage.OpenBuckets[:0]
	for _, b := range usage.OpenBuckets {
		if (b.StartUnix+b.StepSeconds)*int64(time.Second)+int64(grace) <= stream {
			res.Closed = append(res.Closed, b)
		} else {
			open = append(open, b)
		}
	}
	clear(usage.OpenBuckets[len(open):])
	usage.OpenBuckets = open
	if len(res.Closed) == 0 {
		return
	}
	usage.LastClosed = &activitypb.ClosedBuckets{Buckets: res.Closed, Partition: pos.Partition, Offset: pos.Offset, Rekeyed: pos.Rekeyed}
}

// openBucket finds or adds the open bucket of step starting at start.
func openBucket(usage *activitypb.ClientUsage, step, start int64) *activitypb.WindowBucket {
	for _, b := range usage.OpenBuckets {
		if b.StepSeconds == step && b.StartUnix == start {
			return b
		}
	}
	b := &activitypb.WindowBucket{StepSeconds: step, StartUnix: start, StatusClassed: true}
	usage.OpenBuckets = append(usage.OpenBuckets, b)
	return b
}

// noStatus is the class of a call without a status, in a bucket's pairs
// (WindowBucket.status_keys).
const noStatus = codecs.NumStatusClasses

// classBits is how many low bits of a bucket's status key hold the class
// (WindowBucket.status_keys: window id << classBits | class).
const classBits = 3

// Every class and noStatus fit in classBits (else the length is negative).
var _ [1<<classBits - noStatus - 1]struct{}

// add counts one call of endpoint id in b.
func add(b *activitypb.WindowBucket, id uint32) {
	b.Total++
	addCount(&b.EndpointIds, &b.Counts, id)
}

// classify starts keeping status classes in b, a bucket opened before
// classes were kept, whose calls so far then have no known status.
func classify(b *activitypb.WindowBucket) {
	b.StatusClassed = true
	for i, id := range b.EndpointIds {
		if i < len(b.Counts) && b.Counts[i] > 0 {
			b.StatusKeys = append(b.StatusKeys, id<<classBits|noStatus)
			b.StatusCounts = append(b.StatusCounts, b.Counts[i])
		}
	}
}

// addCount counts one under key in the packed pairs keys, counts.
func addCount(keys *[]uint32, counts *[]uint64, key uint32) {
	for i, k := range *keys {
		if k == key {
			(*counts)[i]++
			return
		}
	}
	*keys = append(*keys, key)
	*counts = append(*counts, 1)
}

// EndpointNames are the row's endpoint names by window id (a slice: it is
// built on every close).
func EndpointNames(usage *activitypb.ClientUsage) []string {
	names := make([]string, usage.GetLastWindowId()+1)
	for name, ep := range usage.GetEndpoints() {
		if id := ep.GetWindowId(); int(id) < len(names) {
			names[id] = name
		}
	}
	return names
}

// Counts are a bucket's calls per endpoint name.
func Counts(b *activitypb.WindowBucket, names []string) map[string]uint64 {
	out := make(map[string]uint64, len(b.GetEndpointIds()))
	for i, id := range b.GetEndpointIds() {
		if i < len(b.GetCounts()) && int(id) < len(names) {
			out[names[id]] += b.GetCounts()[i]
		}
	}
	return out
}

// Statuses are a bucket's calls per endpoint name by status class, 2xx
// worked out from the counts (nil without any, as in a bucket opened before
// classes were kept).
func Statuses(b *activitypb.WindowBucket, names []string) map[string]codecs.StatusCounts {
	if !b.GetStatusClassed() {
		return nil
	}
	// The pairs by endpoint: their classes, and how many calls they hold.
	type paired struct {
		classes codecs.StatusCounts
		calls   uint64
	}
	pairs := make(map[uint32]paired, len(b.GetStatusKeys()))
	for i, k := range b.GetStatusKeys() {
		if i >= len(b.GetStatusCounts()) {
			break
		}
		n, p := b.GetStatusCounts()[i], pairs[k>>classBits]
		p.calls += n
		if class := k & (1<<classBits - 1); class < codecs.NumStatusClasses {
			p.classes[class] += n
		}
		pairs[k>>classBits] = p
	}
	var out map[string]codecs.StatusCounts
	for i, id := range b.GetEndpointIds() {
		if i >= len(b.GetCounts()) || int(id) >= len(names) {
			continue
		}
		p := pairs[id]
		if n := b.GetCounts()[i]; n > p.calls {
			p.classes[codecs.Class2xx] += n - p.calls
		}
		if p.classes.IsZero() {
			continue
		}
		if out == nil {
			out = make(map[string]codecs.StatusCounts, len(b.GetEndpointIds()))
		}
		c := out[names[id]]
		c.Add(p.classes)
		out[names[id]] = c
	}
	return out
}

// replayedClose returns what the row's last close emitted when pos, a
// replayed event, is that closing event or one before it in the same
// input: the crash may have lost those emits after the row's changelog
// write had landed, and the event is now skipped.
func replayedClose(usage *activitypb.ClientUsage, pos Position) []*activitypb.WindowBucket {
	lc := usage.GetLastClosed()
	if lc == nil || lc.Partition != pos.Partition || lc.Rekeyed != pos.Rekeyed || pos.Offset > lc.Offset {
		return nil
	}
	return lc.Buckets
}

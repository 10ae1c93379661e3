package usage

import (
	"time"

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

// window adds one event, at unixNano of endpoint ep, to the open buckets of
// usage, advances the client's stream time and closes the buckets it passed
// (end + grace <= stream time, as Kafka Streams closes windows). pos is the
// event's position, kept with what it closed.
func window(usage *activitypb.ClientUsage, w windows.Config, unixNano int64, ep *activitypb.EndpointUsage, pos Position, res *Result) {
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
		add(openBucket(usage, int64(s.Step/time.Second), start), ep.WindowId)
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
	b := &activitypb.WindowBucket{StepSeconds: step, StartUnix: start}
	usage.OpenBuckets = append(usage.OpenBuckets, b)
	return b
}

// add counts one call of endpoint id in b.
func add(b *activitypb.WindowBucket, id uint32) {
	b.Total++
	for i, x := range b.EndpointIds {
		if x == id {
			b.Counts[i]++
			return
		}
	}
	b.EndpointIds = append(b.EndpointIds, id)
	b.Counts = append(b.Counts, 1)
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

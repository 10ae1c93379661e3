package endpoints

import (
	"fmt"
	"time"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/sketch"
)

// Row is a decoded row of the endpoints table: an endpoint's calls
// all-time, or in one bucket (Step and Start set).
type Row struct {
	Calls  uint64
	Status codecs.StatusCounts
	// Latency holds the durations of the calls that had one (events of
	// producers that send none are counted in Calls only).
	Latency *sketch.Latency
	// Clients are the distinct clients that called.
	Clients *sketch.Distinct
	// Applied is, per partition of Users, the last offset whose events are
	// in the row (see Merge).
	Applied   map[int32]int64
	FirstSeen time.Time
	LastSeen  time.Time
	// Step and Start place a bucket row; zero in the all-time row.
	Step  time.Duration
	Start time.Time
}

// NewRow is an empty row.
func NewRow() *Row {
	return &Row{Latency: sketch.NewLatency(), Clients: sketch.NewDistinct()}
}

// Merge adds a partial (decoded by DecodePartial) to r unless it was merged
// before, which it tells by the Users offsets the partial covers: goka
// replays uncommitted input after a crash, and the aggregator writes the
// offsets of a partition in increasing order (one transaction per flush), so
// a partial whose offsets are not beyond the row's was merged. It reports
// whether the partial was merged.
func (r *Row) Merge(p *Partial) bool {
	for part, off := range p.Offsets {
		if last, ok := r.Applied[part]; ok && off <= last {
			return false
		}
	}
	if r.Applied == nil {
		r.Applied = make(map[int32]int64, len(p.Offsets))
	}
	for part, off := range p.Offsets {
		r.Applied[part] = off
	}
	r.add(&p.Row)
	return true
}

// add adds o's calls to r (not its offsets).
func (r *Row) add(o *Row) {
	r.Calls += o.Calls
	r.Status.Add(o.Status)
	if r.Latency == nil {
		r.Latency = sketch.NewLatency()
	}
	r.Latency.Merge(o.Latency)
	if r.Clients == nil {
		r.Clients = sketch.NewDistinct()
	}
	r.Clients.Merge(o.Clients)
	if !o.FirstSeen.IsZero() && (r.FirstSeen.IsZero() || o.FirstSeen.Before(r.FirstSeen)) {
		r.FirstSeen = o.FirstSeen
	}
	if o.LastSeen.After(r.LastSeen) {
		r.LastSeen = o.LastSeen
	}
}

// Sum merges rows (buckets of a range, say) into a new row: calls and
// classes add up, sketches merge, so the sum's quantiles and distinct
// clients are those of the union of the rows' calls.
func Sum(rows []*Row) *Row {
	s := NewRow()
	for _, r := range rows {
		s.add(r)
	}
	return s
}

// Partial is a decoded partial: what the aggregator counted of one row
// during one flush, and the Users offsets the flush covered.
type Partial struct {
	Row
	Offsets map[int32]int64
	// Prune asks for the bucket row to be deleted if past its retention
	// (the janitor's partial, without calls or offsets).
	Prune bool
}

func timeOf(unixNano int64) time.Time {
	if unixNano == 0 {
		return time.Time{}
	}
	return time.Unix(0, unixNano).UTC()
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// RowCodec encodes the values of the endpoints table: *Row as
// activitypb.EndpointStats.
type RowCodec struct{}

// Encode marshals a *Row.
func (RowCodec) Encode(value any) ([]byte, error) {
	r, ok := value.(*Row)
	if !ok {
		return nil, fmt.Errorf("endpoints: cannot encode %T, want *Row", value)
	}
	lat, err := r.Latency.MarshalBinary()
	if err != nil {
		return nil, err
	}
	cl, err := r.Clients.MarshalBinary()
	if err != nil {
		return nil, err
	}
	m := &activitypb.EndpointStats{Calls: r.Calls, StatusClasses: r.Status.Packed(), Latency: lat, Clients: cl,
		AppliedOffsets: r.Applied, FirstSeenUnixNano: unixNano(r.FirstSeen), LastSeenUnixNano: unixNano(r.LastSeen),
		StepSeconds: int64(r.Step / time.Second), StartUnix: startUnix(r.Start)}
	return m.MarshalVT()
}

// Decode unmarshals a *Row.
func (RowCodec) Decode(data []byte) (any, error) { return DecodeRow(data) }

// DecodeRow decodes a value of the endpoints table.
func DecodeRow(data []byte) (*Row, error) {
	var m activitypb.EndpointStats
	if err := m.UnmarshalVT(data); err != nil {
		return nil, fmt.Errorf("endpoints: decode row: %w", err)
	}
	r, err := rowOf(m.Calls, m.StatusClasses, m.Latency, m.Clients, m.FirstSeenUnixNano, m.LastSeenUnixNano, m.StepSeconds, m.StartUnix)
	if err != nil {
		return nil, err
	}
	r.Applied = m.AppliedOffsets
	return r, nil
}

func rowOf(calls uint64, classes []uint64, lat, clients []byte, first, last, step, start int64) (*Row, error) {
	r := &Row{Calls: calls, Status: codecs.StatusCountsOf(classes), Latency: new(sketch.Latency), Clients: new(sketch.Distinct),
		FirstSeen: timeOf(first), LastSeen: timeOf(last), Step: time.Duration(step) * time.Second}
	if step > 0 {
		r.Start = time.Unix(start, 0).UTC()
	}
	if len(lat) > 0 {
		if err := r.Latency.UnmarshalBinary(lat); err != nil {
			return nil, fmt.Errorf("endpoints: latency: %w", err)
		}
	}
	if len(clients) > 0 {
		if err := r.Clients.UnmarshalBinary(clients); err != nil {
			return nil, fmt.Errorf("endpoints: clients: %w", err)
		}
	}
	return r, nil
}

func startUnix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// PartialCodec encodes the records of the partials topic: *Partial as
// activitypb.EndpointPartial.
type PartialCodec struct{}

// Encode marshals a *Partial.
func (PartialCodec) Encode(value any) ([]byte, error) {
	p, ok := value.(*Partial)
	if !ok {
		return nil, fmt.Errorf("endpoints: cannot encode %T, want *Partial", value)
	}
	return p.marshal()
}

func (p *Partial) marshal() ([]byte, error) {
	lat, err := p.Latency.MarshalBinary()
	if err != nil {
		return nil, err
	}
	cl, err := p.Clients.MarshalBinary()
	if err != nil {
		return nil, err
	}
	m := &activitypb.EndpointPartial{Calls: p.Calls, StatusClasses: p.Status.Packed(), Latency: lat, Clients: cl,
		SourceOffsets: p.Offsets, FirstSeenUnixNano: unixNano(p.FirstSeen), LastSeenUnixNano: unixNano(p.LastSeen),
		StepSeconds: int64(p.Step / time.Second), StartUnix: startUnix(p.Start), Prune: p.Prune}
	return m.MarshalVT()
}

// Decode unmarshals a *Partial.
func (PartialCodec) Decode(data []byte) (any, error) { return DecodePartial(data) }

// DecodePartial decodes a record of the partials topic.
func DecodePartial(data []byte) (*Partial, error) {
	var m activitypb.EndpointPartial
	if err := m.UnmarshalVT(data); err != nil {
		return nil, fmt.Errorf("endpoints: decode partial: %w", err)
	}
	if m.Prune {
		return &Partial{Prune: true}, nil
	}
	if len(m.SourceOffsets) == 0 {
		return nil, fmt.Errorf("endpoints: partial without source offsets")
	}
	r, err := rowOf(m.Calls, m.StatusClasses, m.Latency, m.Clients, m.FirstSeenUnixNano, m.LastSeenUnixNano, m.StepSeconds, m.StartUnix)
	if err != nil {
		return nil, err
	}
	return &Partial{Row: *r, Offsets: m.SourceOffsets}, nil
}

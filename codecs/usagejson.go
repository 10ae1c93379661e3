package codecs

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs/activitypb"
)

// UsageDoc is the JSON form of a usage table value: the body of
// GET /usage/{client} (the API document's ClientUsage) and a top client of
// the dashboard's snapshots.
type UsageDoc struct {
	Client string `json:"client"`
	Total  uint64 `json:"total"`
	// Status is the calls by status class over every endpoint.
	Status    StatusCounts           `json:"status,omitzero"`
	FirstSeen *time.Time             `json:"first_seen,omitempty"`
	LastSeen  *time.Time             `json:"last_seen,omitempty"`
	Endpoints map[string]EndpointDoc `json:"endpoints"`
}

// EndpointDoc is one endpoint's calls in a UsageDoc.
type EndpointDoc struct {
	// Service is the service the endpoint belongs to (its key's prefix, or
	// DefaultService).
	Service string `json:"service"`
	Count   uint64 `json:"count"`
	// Status is the calls by status class; calls whose status is not known
	// are in Count only (StatusClass).
	Status   StatusCounts `json:"status,omitzero"`
	LastSeen *time.Time   `json:"last_seen,omitempty"`
}

// UsageDocOf converts a table value to its JSON form.
func UsageDocOf(u *activitypb.ClientUsage) UsageDoc {
	out := UsageDoc{
		Client:    u.GetClient(),
		Total:     u.GetTotal(),
		FirstSeen: TimeOf(u.GetFirstSeen()),
		LastSeen:  TimeOf(u.GetLastSeen()),
		Endpoints: make(map[string]EndpointDoc, len(u.GetEndpoints())),
	}
	for k, e := range u.GetEndpoints() {
		svc, _ := SplitEndpointKey(k)
		d := EndpointDoc{Service: svc, Count: e.GetCount(), Status: StatusCountsOf(e.GetStatusClasses()), LastSeen: TimeOf(e.GetLastSeen())}
		out.Status.Add(d.Status)
		out.Endpoints[k] = d
	}
	return out
}

// OfService is d narrowed to the endpoints of service (a name as
// NormalService makes it), its totals summed over them. A row keeps no
// first call per service: FirstSeen is left out.
func (d UsageDoc) OfService(service string) UsageDoc {
	out := UsageDoc{Client: d.Client, Endpoints: make(map[string]EndpointDoc)}
	for k, e := range d.Endpoints {
		if !InService(k, service) {
			continue
		}
		out.Endpoints[k] = e
		out.Total += e.Count
		out.Status.Add(e.Status)
		if e.LastSeen != nil && (out.LastSeen == nil || e.LastSeen.After(*out.LastSeen)) {
			out.LastSeen = e.LastSeen
		}
	}
	return out
}

// TimeOf is ts as a time for JSON, nil when unset.
func TimeOf(ts *timestamppb.Timestamp) *time.Time {
	if ts == nil {
		return nil
	}
	t := ts.AsTime()
	return &t
}

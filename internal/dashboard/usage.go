package dashboard

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs/activitypb"
)

// ClientUsageJSON is one top client of a snapshot, in the JSON shape of
// GET /usage/{client} (the API document's ClientUsage). It is declared here
// so the dashboard does not depend on the API package.
type ClientUsageJSON struct {
	Client    string                   `json:"client"`
	Total     uint64                   `json:"total"`
	FirstSeen *time.Time               `json:"first_seen,omitempty"`
	LastSeen  *time.Time               `json:"last_seen,omitempty"`
	Endpoints map[string]EndpointCount `json:"endpoints"`
}

// EndpointCount is one endpoint's calls by a top client.
type EndpointCount struct {
	Count    uint64     `json:"count"`
	LastSeen *time.Time `json:"last_seen,omitempty"`
}

func usageJSON(u *activitypb.ClientUsage) ClientUsageJSON {
	out := ClientUsageJSON{
		Client:    u.GetClient(),
		Total:     u.GetTotal(),
		FirstSeen: timeOf(u.GetFirstSeen()),
		LastSeen:  timeOf(u.GetLastSeen()),
		Endpoints: make(map[string]EndpointCount, len(u.GetEndpoints())),
	}
	for k, e := range u.GetEndpoints() {
		out.Endpoints[k] = EndpointCount{Count: e.GetCount(), LastSeen: timeOf(e.GetLastSeen())}
	}
	return out
}

func timeOf(ts *timestamppb.Timestamp) *time.Time {
	if ts == nil {
		return nil
	}
	t := ts.AsTime()
	return &t
}

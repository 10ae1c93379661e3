package views

import (
	"slices"
	"time"

	"github.com/inarious/inarious/internal/windows"
	"github.com/inarious/inarious/processors/endpoints"
)

// EndpointReader is the read side of the endpoints group, however it is
// read: from a local goka view of the endpoints table, or from the workers
// owning each endpoint's partition (--usage-source=workers). The endpoint
// routes and the dashboard read through it.
type EndpointReader interface {
	// Endpoint is endpoint's all-time summary; ok is false when the
	// endpoint was never called.
	Endpoint(endpoint string) (s endpoints.Summary, ok bool, err error)
	// Endpoints lists up to limit endpoints in order, after the cursor
	// (from the first when nil).
	Endpoints(order EndpointOrder, after *EndpointCursor, limit int) (EndpointPage, error)
	// Windows is the windowing kept; empty when windows are off.
	Windows() windows.Config
	// EndpointSeries is endpoint's buckets of step whose start lies in
	// [from, to], oldest first, buckets without calls left out.
	EndpointSeries(endpoint string, step time.Duration, from, to time.Time) ([]EndpointBucket, error)
	// EndpointRange summarizes endpoint's calls over the last window,
	// relative to now, merging the buckets' sketches.
	EndpointRange(endpoint string, window time.Duration) (EndpointWindow, error)
	// Recovered reports whether answers cover the whole table.
	Recovered() bool
}

// EndpointOrder is how endpoints are listed: descending by calls, by p99
// latency or by error rate; ties by endpoint name, ascending.
type EndpointOrder string

// The orders of EndpointReader.Endpoints.
const (
	ByCalls     EndpointOrder = "calls"
	ByP99       EndpointOrder = "p99"
	ByErrorRate EndpointOrder = "error_rate"
)

// Orders are the valid EndpointOrders.
var Orders = []EndpointOrder{ByCalls, ByP99, ByErrorRate}

// Valid reports whether o is one of Orders.
func (o EndpointOrder) Valid() bool { return slices.Contains(Orders, o) }

// Cursor is the cursor that continues a list in order o after s.
func (o EndpointOrder) Cursor(s endpoints.Summary) EndpointCursor {
	return EndpointCursor{Value: o.Value(s), Endpoint: s.Endpoint}
}

// Value is the summary's value that o sorts by.
func (o EndpointOrder) Value(s endpoints.Summary) float64 {
	switch o {
	case ByP99:
		return s.Latency.P99
	case ByErrorRate:
		return s.ErrorRate
	}
	return float64(s.Calls)
}

// EndpointCursor is the last row of a page: the next page starts after it.
type EndpointCursor struct {
	Value    float64
	Endpoint string
}

// Before reports whether the row (value, endpoint) comes before c in a
// descending list.
func (c EndpointCursor) Before(value float64, endpoint string) bool {
	return value > c.Value || value == c.Value && endpoint < c.Endpoint
}

// EndpointPage is one page of a list of endpoints.
type EndpointPage struct {
	Rows []endpoints.Summary
	// Endpoints is how many endpoints the table holds.
	Endpoints int
}

// EndpointBucket is an endpoint's summary in one bucket.
type EndpointBucket struct {
	Start time.Time
	Step  time.Duration
	endpoints.Summary
	// Final is true once the bucket is past its grace period: late calls no
	// longer change it.
	Final bool
}

// EndpointWindow is an endpoint's summary over a range of buckets: from
// the first bucket's start to the end of the range asked for.
type EndpointWindow struct {
	Step     time.Duration
	From, To time.Time
	endpoints.Summary
}

package views

import (
	"time"

	"github.com/inarious/inarious/internal/endpointindex"
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
// latency or by error rate; ties by endpoint name, ascending. The orders,
// cursors and pages are the index's (internal/endpointindex), which local
// views and workers both keep.
type EndpointOrder = endpointindex.Order

// The orders of EndpointReader.Endpoints.
const (
	ByCalls     = endpointindex.ByCalls
	ByP99       = endpointindex.ByP99
	ByErrorRate = endpointindex.ByErrorRate
)

// Orders are the valid EndpointOrders.
var Orders = endpointindex.Orders

// EndpointCursor is the last row of a page: the next page starts after it
// (Before: a row that comes before it in a descending list).
type EndpointCursor = endpointindex.Cursor

// EndpointPage is one page of a list of endpoints; Endpoints is how many
// endpoints the table holds.
type EndpointPage = endpointindex.Page

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

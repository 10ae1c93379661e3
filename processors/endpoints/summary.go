package endpoints

import (
	"time"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/sketch"
)

// Summary is what the API answers for an endpoint, all-time or over a
// range of buckets: its calls, classes, error rates, latency quantiles and
// distinct clients.
type Summary struct {
	// Endpoint is the table's key: "METHOD /route", prefixed by its service
	// unless that is the default one (codecs.EndpointKey).
	Endpoint string `json:"endpoint"`
	// Service is the endpoint's service (codecs.DefaultService when its
	// key names none).
	Service string              `json:"service"`
	Calls   uint64              `json:"calls"`
	Status  codecs.StatusCounts `json:"status,omitzero"`
	// ErrorRate is the share of calls with a known status that failed
	// (4xx and 5xx); ServerErrorRate the share that failed with a 5xx.
	ErrorRate       float64 `json:"error_rate"`
	ServerErrorRate float64 `json:"server_error_rate"`
	// Latency is the quantiles of the calls' durations, each within
	// LatencyRelativeError of the exact quantile.
	Latency Quantiles `json:"latency_ms"`
	// DistinctClients is estimated with a standard error of
	// DistinctStdError (near exact below a few thousand clients).
	DistinctClients uint64    `json:"distinct_clients"`
	FirstSeen       time.Time `json:"first_seen,omitzero"`
	LastSeen        time.Time `json:"last_seen,omitzero"`
}

// Quantiles are latency quantiles in milliseconds, of Timed calls (the
// calls whose producer sent a duration).
type Quantiles struct {
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	Timed uint64  `json:"timed_calls"`
}

// The accuracy of a Summary's estimates.
var (
	LatencyRelativeError = sketch.RelativeAccuracy
	DistinctStdError     = sketch.DistinctStdError
)

// Summarize answers for endpoint from its row.
func Summarize(endpoint string, r *Row) Summary {
	service, _ := codecs.SplitEndpointKey(endpoint)
	s := Summary{Endpoint: endpoint, Service: service, Calls: r.Calls, Status: r.Status, FirstSeen: r.FirstSeen, LastSeen: r.LastSeen}
	s.ErrorRate, s.ServerErrorRate = r.Status.ErrorRates()
	if n := r.Latency.Count(); n > 0 {
		ms := func(q float64) float64 { return r.Latency.Quantile(q) / 1000 }
		s.Latency = Quantiles{P50: ms(0.5), P90: ms(0.9), P95: ms(0.95), P99: ms(0.99), Timed: n}
	}
	if r.Clients != nil {
		s.DistinctClients = r.Clients.Estimate()
	}
	return s
}

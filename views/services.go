package views

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/processors/endpoints"
)

// scanPage is how many rows ScanEndpoints reads at a time.
const scanPage = 1000

// ScanEndpoints calls each with every row of order's list after after, a
// page at a time, until each returns false or the list ends.
func ScanEndpoints(r EndpointReader, order EndpointOrder, after *EndpointCursor, each func(endpoints.Summary) bool) error {
	for {
		p, err := r.Endpoints(order, after, scanPage)
		if err != nil {
			return err
		}
		for _, s := range p.Rows {
			if !each(s) {
				return nil
			}
		}
		if len(p.Rows) < scanPage {
			return nil
		}
		c := order.Cursor(p.Rows[len(p.Rows)-1])
		after = &c
	}
}

// ServiceSummary is one service's endpoints added up (latency quantiles are
// per endpoint: they do not add up).
type ServiceSummary struct {
	Service         string              `json:"service"`
	Endpoints       int                 `json:"endpoints"`
	Calls           uint64              `json:"calls"`
	Status          codecs.StatusCounts `json:"status,omitzero"`
	ErrorRate       float64             `json:"error_rate"`
	ServerErrorRate float64             `json:"server_error_rate"`
	LastSeen        time.Time           `json:"last_seen,omitzero"`
}

// Services adds up the all-time rows of every service in the endpoints
// table, the busiest service first. It reads the whole table: fine for the
// thousands of endpoints a table holds.
func Services(r EndpointReader) ([]ServiceSummary, error) {
	services, _, err := ServicesAndBusiest(r)
	return services, err
}

// ServicesAndBusiest is Services and, from the same read, the endpoint
// with the most calls (nil when the table is empty).
func ServicesAndBusiest(r EndpointReader) ([]ServiceSummary, *endpoints.Summary, error) {
	byName := map[string]*ServiceSummary{}
	var busiest *endpoints.Summary
	err := ScanEndpoints(r, ByCalls, nil, func(s endpoints.Summary) bool {
		if busiest == nil {
			busiest = &s
		}
		svc := byName[s.Service]
		if svc == nil {
			svc = &ServiceSummary{Service: s.Service}
			byName[s.Service] = svc
		}
		svc.Endpoints++
		svc.Calls += s.Calls
		svc.Status.Add(s.Status)
		if s.LastSeen.After(svc.LastSeen) {
			svc.LastSeen = s.LastSeen
		}
		return true
	})
	if err != nil {
		return nil, nil, err
	}
	out := make([]ServiceSummary, 0, len(byName))
	for _, svc := range byName {
		svc.ErrorRate, svc.ServerErrorRate = svc.Status.ErrorRates()
		out = append(out, *svc)
	}
	slices.SortFunc(out, func(a, b ServiceSummary) int {
		if a.Calls != b.Calls {
			return cmp.Compare(b.Calls, a.Calls)
		}
		return strings.Compare(a.Service, b.Service)
	})
	return out, busiest, nil
}

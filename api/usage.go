package api

import (
	"net/http"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gorilla/mux"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/problem"
)

// EndpointCount is one endpoint's usage in JSON.
type EndpointCount struct {
	Count    uint64     `json:"count"`
	LastSeen *time.Time `json:"last_seen,omitempty"`
}

// ClientUsage is GET /usage/{client}.
type ClientUsage struct {
	Client    string                   `json:"client"`
	Total     uint64                   `json:"total"`
	FirstSeen *time.Time               `json:"first_seen,omitempty"`
	LastSeen  *time.Time               `json:"last_seen,omitempty"`
	Endpoints map[string]EndpointCount `json:"endpoints"`
}

// ClientTotal is one row of GET /usage.
type ClientTotal struct {
	Client   string     `json:"client"`
	Total    uint64     `json:"total"`
	LastSeen *time.Time `json:"last_seen,omitempty"`
}

// UsagePage is GET /usage.
type UsagePage struct {
	Clients    []ClientTotal `json:"clients"`
	Total      int           `json:"total_clients"`
	NextOffset *int          `json:"next_offset,omitempty"`
}

func timeOf(ts *timestamppb.Timestamp) *time.Time {
	if ts == nil {
		return nil
	}
	t := ts.AsTime()
	return &t
}

// UsageJSON converts a table value to its JSON form.
func UsageJSON(u *activitypb.ClientUsage) ClientUsage {
	out := ClientUsage{
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

const maxClientLen = 256

func (s *Server) getUsage(w http.ResponseWriter, r *http.Request) {
	client := mux.Vars(r)["client"]
	if len(client) > maxClientLen || !utf8.ValidString(client) {
		problem.Write(w, r, http.StatusBadRequest, "client must be valid UTF-8 of at most 256 bytes")
		return
	}
	u, err := s.usage.Get(client)
	if err != nil {
		s.log.Error("usage lookup failed", "client", client, "err", err)
		writeUsageError(w, r, err, "usage table is not available")
		return
	}
	if u == nil {
		problem.Write(w, r, http.StatusNotFound, "no usage recorded for client "+strconv.Quote(client))
		return
	}
	if r.URL.Query().Has("window") {
		s.getUsageWindow(w, r, client)
		return
	}
	writeJSON(w, http.StatusOK, UsageJSON(u))
}

const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

// intParam reads a non-negative integer query parameter.
func intParam(r *http.Request, name string, def, max int) (int, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > max {
		return 0, false
	}
	return n, true
}

func (s *Server) listUsage(w http.ResponseWriter, r *http.Request) {
	limit, ok := intParam(r, "limit", defaultPageSize, maxPageSize)
	if !ok || limit == 0 {
		problem.Write(w, r, http.StatusBadRequest, "limit must be an integer from 1 to 1000")
		return
	}
	offset, ok := intParam(r, "offset", 0, 1<<30)
	if !ok {
		problem.Write(w, r, http.StatusBadRequest, "offset must be a non-negative integer")
		return
	}
	var rows []ClientTotal
	err := s.usage.Each(func(u *activitypb.ClientUsage) bool {
		rows = append(rows, ClientTotal{Client: u.GetClient(), Total: u.GetTotal(), LastSeen: timeOf(u.GetLastSeen())})
		return true
	})
	if err != nil {
		s.log.Error("usage iteration failed", "err", err)
		writeUsageError(w, r, err, "usage table is not available")
		return
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Total != rows[j].Total {
			return rows[i].Total > rows[j].Total
		}
		return rows[i].Client < rows[j].Client
	})
	page := UsagePage{Total: len(rows), Clients: []ClientTotal{}}
	if offset < len(rows) {
		end := min(offset+limit, len(rows))
		page.Clients = rows[offset:end]
		if end < len(rows) {
			page.NextOffset = &end
		}
	}
	writeJSON(w, http.StatusOK, page)
}

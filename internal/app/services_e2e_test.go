package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/app/apptest"
	"github.com/inarious/inarious/internal/endpointshttp"
	"github.com/inarious/inarious/internal/otlpin"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/internal/usagehttp"
)

// postEvents sends items to POST /events and wants every one accepted.
func (s *system) postEvents(t *testing.T, items []map[string]any) {
	t.Helper()
	body, err := json.Marshal(items)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(s.Base+otlpin.EventsPath, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var res otlpin.BatchResult
	err = json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || res.Accepted != len(items) {
		t.Fatalf("POST /events = %d %+v (%v)", resp.StatusCode, res, err)
	}
}

// TestServicesAreKeptApart: the same route of two services, and of
// Inarious' own API (the default service), called by one client, is three
// endpoints in the usage row and the endpoints table, and ?service= narrows
// every read to one of them.
func TestServicesAreKeptApart(t *testing.T) {
	s := &system{apptest.Start(t, nil)}
	const client = "198.51.100.90" // an address: X-Forwarded-For carries addresses
	now := time.Now().UTC().Format(time.RFC3339Nano)
	var items []map[string]any
	calls := map[string]int{"shop": 4, "billing": 2}
	for svc, n := range calls {
		for i := range n {
			items = append(items, map[string]any{"client": client, "httpMethod": "GET", "route": "/users/{id}",
				"endpoint": fmt.Sprintf("/users/%d", i), "httpStatus": 200, "requestTime": now, "service": svc})
		}
	}
	s.postEvents(t, items)
	for range 3 {
		s.call(t, "GET", "/users/u1", client, "") // Inarious' own API: 404, in the default service
	}
	testutil.Eventually(t, 30*time.Second, s.counts(t, client, map[string]uint64{
		"shop: GET /users/{id}": 4, "billing: GET /users/{id}": 2, "GET /users/{id}": 3}))

	var u usagehttp.ClientUsage
	if code := s.getJSON(t, "/usage/"+client+"?service=shop", &u); code != http.StatusOK || u.Total != 4 || len(u.Endpoints) != 1 ||
		u.Endpoints["shop: GET /users/{id}"].Service != "shop" || u.FirstSeen != nil {
		t.Errorf("?service=shop: %d %+v", code, u)
	}
	if code := s.getJSON(t, "/usage/"+client+"?service=default", &u); code != http.StatusOK || u.Total != 3 || u.Status.IsZero() {
		t.Errorf("?service=default: %d %+v", code, u)
	}
	var win usagehttp.WindowUsage
	if code := s.getJSON(t, "/usage/"+client+"?service=billing&window=1h", &win); code != http.StatusOK || win.Total != 2 || len(win.Endpoints) != 1 {
		t.Errorf("?service=billing&window=1h: %d %+v", code, win)
	}

	endpoint := "/endpoints/" + url.PathEscape("GET /users/{id}")
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		var sum struct {
			Service string
			Calls   uint64
		}
		code := s.getJSON(t, endpoint+"?service=shop", &sum)
		return code == http.StatusOK && sum.Calls == 4 && sum.Service == "shop", fmt.Sprintf("%s?service=shop: %d %+v", endpoint, code, sum)
	})
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		var list endpointshttp.ServiceList
		code := s.getJSON(t, "/services", &list)
		got := map[string]uint64{}
		for _, svc := range list.Services {
			got[svc.Service] = svc.Calls
		}
		// The default service also holds the calls this test made to read.
		return code == http.StatusOK && got["shop"] == 4 && got["billing"] == 2 && got["default"] >= 3,
			fmt.Sprintf("GET /services: %d %v", code, got)
	})
	var page endpointshttp.EndpointPage
	if code := s.getJSON(t, "/endpoints?service=billing", &page); code != http.StatusOK || page.Total != 1 || len(page.Endpoints) != 1 ||
		page.Endpoints[0].Endpoint != "billing: GET /users/{id}" || page.Endpoints[0].Calls != 2 {
		t.Errorf("/endpoints?service=billing: %d %+v", code, page)
	}
}

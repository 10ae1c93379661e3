package app_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/app/apptest"
	"github.com/inarious/inarious/internal/otlpin"
	"github.com/inarious/inarious/internal/testutil"
)

// TestEventBatchesAreCountedPerClientAndEndpoint: a batch of another API's
// events on POST /events is counted in GET /usage/{client} per client and
// endpoint; rejected items are not. Sent twice (the second time gzipped),
// its events with an id are counted once, those without twice.
func TestEventBatchesAreCountedPerClientAndEndpoint(t *testing.T) {
	s := &system{apptest.Start(t, nil)}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	var items []map[string]any
	want := map[string]map[string]uint64{"batch-alice": {}, "batch-bob": {}}
	for i := range 6 {
		items = append(items, map[string]any{"id": fmt.Sprintf("e%d", i), "client": "batch-alice", "httpMethod": "GET",
			"route": "/orders/{id}", "endpoint": fmt.Sprintf("/orders/%d", i), "httpStatus": 200, "durationUs": 1200, "requestTime": now, "service": "shop"})
		want["batch-alice"]["shop: GET /orders/{id}"]++ // has an id
	}
	for i := range 3 { // snake_case names, no route, no request time
		items = append(items, map[string]any{"client": "batch-bob", "http_method": "POST", "endpoint": fmt.Sprintf("/carts/%d/items", 1000+i), "http_status": 201})
		want["batch-bob"]["POST /carts/{id}/items"] += 2
	}
	items = append(items,
		map[string]any{"client": "batch-bob", "route": "/orders/{id}"},                             // no method
		map[string]any{"client": "batch-bob", "httpMethod": "GET", "route": "/a", "colour": "red"}) // unknown field
	body, err := json.Marshal(items)
	if err != nil {
		t.Fatal(err)
	}
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = zw.Write(body)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	for _, enc := range []string{"", "gzip"} {
		b := body
		if enc == "gzip" {
			b = zipped.Bytes()
		}
		req, err := http.NewRequest(http.MethodPost, s.Base+otlpin.EventsPath, bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if enc != "" {
			req.Header.Set("Content-Encoding", enc)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var res otlpin.BatchResult
		err = json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil || res.Accepted != 9 || res.Rejected != 2 || len(res.Errors) != 2 ||
			res.Errors[0].Index != 9 || res.Errors[1].Index != 10 {
			t.Fatalf("POST /events (%q) = %d %+v (%v)", enc, resp.StatusCode, res, err)
		}
	}
	for client, w := range want {
		testutil.Eventually(t, 30*time.Second, s.counts(t, client, w))
	}
}

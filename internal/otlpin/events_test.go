package otlpin_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/otlpin"
)

func batchReceiver(t *testing.T, pub otlpin.Publisher, opts ...otlpin.Option) http.Handler {
	t.Helper()
	return otlpin.Routes(pub, opts...)[1].Handler
}

func batchResult(t *testing.T, body []byte) otlpin.BatchResult {
	t.Helper()
	var res otlpin.BatchResult
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	return res
}

func TestParseBatch(t *testing.T) {
	body := `[
	 {"id":"e1","client":"alice","httpMethod":"GET","route":"/orders/{id}","endpoint":"/orders/7","httpStatus":200,
	  "durationUs":"1500","requestTime":"2026-12-06T12:00:00Z","service":"shop"},
	 {"id":"e2","client":"bob","http_method":"POST","endpoint":"/carts/9/items","requestId":"own-id","http_status":201},
	 {"id":"e3","httpMethod":"GET","route":"/a"},
	 {"id":"e4","client":"alice","route":"/a"},
	 {"id":"e5","client":"alice","httpMethod":"GET","route":"/a","colour":"red"},
	 {"id":7,"client":"alice","httpMethod":"GET","route":"/a"},
	 {"client":"alice","httpMethod":"GET"},
	 {"clientHost":"192.0.2.1","httpMethod":"DELETE","route":"/a","httpStatus":"abc"}
	]`
	evs, res, detail := otlpin.ParseBatch([]byte(body), t0)
	if detail != "" {
		t.Fatal(detail)
	}
	if res.Accepted != 2 || res.Rejected != 6 || len(evs) != 2 || len(res.Errors) != 6 {
		t.Fatalf("result %+v, %d events", res, len(evs))
	}
	for i, want := range []struct {
		index int
		says  string
	}{{2, "client"}, {3, "httpMethod"}, {4, "colour"}, {5, "id"}, {6, "route or endpoint"}, {7, "httpStatus"}} {
		if e := res.Errors[i]; e.Index != want.index || !strings.Contains(e.Error, want.says) {
			t.Errorf("error %d = %+v, want index %d saying %q", i, e, want.index, want.says)
		}
	}
	a, b := evs[0], evs[1]
	if a.Client != "alice" || codecs.EndpointKey(a) != "shop: GET /orders/{id}" || a.HttpStatus != 200 || a.DurationUs != 1500 ||
		!a.RequestTime.AsTime().Equal(t0) || a.Service != "shop" || a.RequestId != "e1" {
		t.Errorf("first event %v", a)
	}
	if b.Client != "bob" || codecs.EndpointKey(b) != "POST /carts/{id}/items" || b.HttpStatus != 201 || b.RequestId != "own-id" ||
		!b.RequestTime.AsTime().Equal(t0) {
		t.Errorf("second event %v (%s)", b, codecs.EndpointKey(b))
	}
}

func TestParseBatchCapsTheErrorList(t *testing.T) {
	body := "[" + strings.TrimSuffix(strings.Repeat(`{"route":"/a"},`, 50), ",") + "]"
	_, res, detail := otlpin.ParseBatch([]byte(body), t0)
	if detail != "" || res.Rejected != 50 || len(res.Errors) != otlpin.MaxBatchErrors || res.Errors[19].Index != 19 {
		t.Errorf("%q %+v", detail, res)
	}
}

func TestParseBatchMalformed(t *testing.T) {
	over := "[" + strings.TrimSuffix(strings.Repeat(`{},`, otlpin.MaxBatchEvents+1), ",") + "]"
	for _, body := range []string{``, `{}`, `null`, `[]`, `[{}`, `[{}] []`, `[{},42]`, `["x"]`, `[null]`, `[[]]`, over} {
		if _, _, detail := otlpin.ParseBatch([]byte(body), t0); detail == "" {
			t.Errorf("%.40q was taken", body)
		}
	}
}

func TestBatchAnswers(t *testing.T) {
	pub := &fakePub{room: 10, healthy: true}
	h := batchReceiver(t, pub, otlpin.WithMaxBodyBytes(1024))
	good := []byte(`[{"id":"e1","client":"alice","httpMethod":"GET","route":"/a"},{"client":"bob","route":"/a"}]`)
	for _, enc := range []string{"", "gzip"} {
		body := good
		if enc != "" {
			body = gzipped(t, good)
		}
		w := post(h, "application/json; charset=utf-8", enc, body)
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != otlpin.ContentTypeJSON {
			t.Fatalf("%q: %d %s: %s", enc, w.Code, w.Header().Get("Content-Type"), w.Body)
		}
		if res := batchResult(t, w.Body.Bytes()); res.Accepted != 1 || res.Rejected != 1 || len(res.Errors) != 1 || res.Errors[0].Index != 1 {
			t.Errorf("%q: answer %s", enc, w.Body)
		}
	}
	if len(pub.events) != 2 || pub.events[0].RequestId != "e1" {
		t.Errorf("published %v", pub.events)
	}
	if w := post(h, otlpin.ContentTypeJSON, "", []byte(`[{"route":"/a"}]`)); w.Code != 200 || w.Body.String() != `{"accepted":0,"rejected":1,"errors":[{"index":0,"error":"without httpMethod"}]}`+"\n" {
		t.Errorf("all rejected: %d %s", w.Code, w.Body)
	}
	big := []byte("[" + strings.TrimSuffix(strings.Repeat(`{"client":"alice","httpMethod":"GET","route":"/a"},`, 40), ",") + "]")
	for _, c := range []struct {
		name, ct, enc string
		body          []byte
		want          int
	}{
		{"protobuf", otlpin.ContentTypeProtobuf, "", good, 415},
		{"no content type", "", "", good, 415},
		{"latin1", "application/json; charset=latin1", "", good, 415},
		{"unknown encoding", otlpin.ContentTypeJSON, "br", good, 415},
		{"not JSON", otlpin.ContentTypeJSON, "", []byte(`[{`), 400},
		{"an object", otlpin.ContentTypeJSON, "", []byte(`{"client":"alice"}`), 400},
		{"empty", otlpin.ContentTypeJSON, "", []byte(`[]`), 400},
		{"an item not an object", otlpin.ContentTypeJSON, "", []byte(`[{"client":"a","httpMethod":"GET","route":"/a"},"x"]`), 400},
		{"not gzip", otlpin.ContentTypeJSON, "gzip", good, 400},
		{"over the limit", otlpin.ContentTypeJSON, "", big, 413},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := post(h, c.ct, c.enc, c.body)
			if w.Code != c.want || w.Header().Get("Content-Type") != "application/problem+json" {
				t.Errorf("%d %s, want %d problem: %s", w.Code, w.Header().Get("Content-Type"), c.want, w.Body)
			}
		})
	}
	if len(pub.events) != 2 {
		t.Errorf("refused requests published %d events", len(pub.events)-2)
	}
	// Gzipped, the big batch passes the wire limit but not the queue's room.
	if w := post(h, otlpin.ContentTypeJSON, "gzip", gzipped(t, big)); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" || len(pub.events) != 2 {
		t.Errorf("gzipped big batch: %d, %d events; want 429 (40 events, room for 8)", w.Code, len(pub.events))
	}
}

func TestBatchFullPublisher(t *testing.T) {
	for _, healthy := range []bool{true, false} {
		pub := &fakePub{room: 1, healthy: healthy}
		body := `[{"client":"a","httpMethod":"GET","route":"/a"},{"client":"b","httpMethod":"GET","route":"/a"}]`
		w := post(batchReceiver(t, pub), otlpin.ContentTypeJSON, "", []byte(body))
		want := http.StatusTooManyRequests
		if !healthy {
			want = http.StatusServiceUnavailable
		}
		if w.Code != want || w.Header().Get("Retry-After") != "1" || len(pub.events) != 0 {
			t.Errorf("healthy %v: %d, Retry-After %q, %d events; want %d, 1, none", healthy, w.Code, w.Header().Get("Retry-After"), len(pub.events), want)
		}
	}
}

func ExampleParseBatch() {
	_, res, _ := otlpin.ParseBatch([]byte(`[{"id":"1","client":"alice","httpMethod":"GET","route":"/a"},{"client":"bob"}]`), t0)
	fmt.Printf("%d accepted, %d rejected: %+v\n", res.Accepted, res.Rejected, res.Errors)
	// Output: 1 accepted, 1 rejected: [{Index:1 Error:without httpMethod}]
}

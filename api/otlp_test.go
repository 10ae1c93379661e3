package api_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/inarious/inarious/api"
	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/internal/auth"
	"github.com/inarious/inarious/internal/otlpin"
	"github.com/inarious/inarious/internal/testutil"
)

// TestOTLPReceiverScope: with keys on, POST /v1/traces needs events:write
// (or admin), which reads nothing; the spans are counted under their own
// clients and the request itself under the key's client.
func TestOTLPReceiverScope(t *testing.T) {
	keys, err := auth.Parse(strings.NewReader(
		"shop:events:write:"+auth.Hash("shop-key")+"\nreader:users:read,usage:read:"+auth.Hash("reader-key")+"\nops:admin:"+auth.Hash("ops-key")), "test")
	if err != nil {
		t.Fatal(err)
	}
	em := &fakeEmitter{}
	pub := api.NewPublisher(em, 128)
	t.Cleanup(func() { _ = pub.Close(context.Background()) })
	cr, err := api.NewClientResolver(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := newAPI(fakeUsage{}, pub, cr, api.WithAPIKeys(keys),
		api.WithRoutes(otlpin.Routes(pub, otlpin.WithLogger(slog.New(slog.DiscardHandler)))...))
	if err != nil {
		t.Fatal(err)
	}
	_, protoBody, _ := otlpBodies(t)
	call := func(method, path, key string) int {
		r := httptest.NewRequest(method, path, strings.NewReader(protoBody))
		r.Header.Set("Content-Type", otlpin.ContentTypeProtobuf)
		if key != "" {
			r.Header.Set(auth.KeyHeader, key)
		}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		return w.Code
	}
	for _, c := range []struct {
		method, path, key string
		want              int
	}{
		{"POST", "/v1/traces", "", 401},
		{"POST", "/v1/traces", "reader-key", 403},
		{"POST", "/v1/traces", "shop-key", 200},
		{"POST", "/v1/traces", "ops-key", 200},
		{"GET", "/usage/shop", "shop-key", 403},
		{"GET", "/usage", "shop-key", 403},
	} {
		if got := call(c.method, c.path, c.key); got != c.want {
			t.Errorf("%s %s with %q = %d, want %d", c.method, c.path, c.key, got, c.want)
		}
	}
	// 6 requests, and one span event for each of the two accepted batches.
	testutil.Eventually(t, 5*time.Second, func() (bool, string) {
		n := len(em.emitted())
		return n == 8, fmt.Sprintf("%d events, want 8", n)
	})
	var spans, shopCalls int
	for _, ev := range em.emitted() {
		switch {
		case codecs.EndpointKey(ev) == "shop: GET /orders/{id}":
			spans++
			if codecs.ClientOf(ev) != "192.0.2.4" || ev.Service != "shop" {
				t.Errorf("span event %v", ev)
			}
		case codecs.ClientOf(ev) == "shop":
			shopCalls++
		}
	}
	if spans != 2 || shopCalls != 3 {
		var got []string
		for _, ev := range em.emitted() {
			got = append(got, codecs.ClientOf(ev)+" "+codecs.EndpointKey(ev))
		}
		t.Errorf("%d span events, %d calls counted under shop; want 2, 3: %q", spans, shopCalls, got)
	}
}

package quotas_test

import (
	"strings"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/quotas"
	"github.com/inarious/inarious/internal/windows"
)

func TestParseLimitNameReadsWhatNameWrites(t *testing.T) {
	for _, l := range []quotas.Limit{
		{Window: "1m"}, {Window: "1d", Service: "shop"}, {Window: "1h", Endpoint: "GET /users/{id}"},
		{Window: "1d", Service: "shop", Endpoint: "POST /orders"}, {Window: "1m", Service: "GET"},
		{Window: "1m", Service: "SHOP", Endpoint: "GET /x"},
	} {
		got, err := quotas.ParseLimitName(l.Name())
		if err != nil || got != l {
			t.Errorf("%q: %+v %v, want %+v", l.Name(), got, err, l)
		}
	}
	for name, says := range map[string]string{
		"":                  "window",
		"gold":              "window",
		"1m a shop":         "endpoint",
		"1m shop GET users": "not an endpoint",
		"1m sh!op":          "service",
	} {
		if _, err := quotas.ParseLimitName(name); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("%q: %v, want an error saying %q", name, err, says)
		}
	}
	if msg := quotas.CheckWindow("5m", windows.Default()); !strings.Contains(msg, "1m, 1h, 1d") {
		t.Errorf("a window not kept: %q", msg)
	}
}

func TestIndexPolicyInForce(t *testing.T) {
	ix := quotas.NewIndex()
	t0 := time.Unix(1700000000, 0)
	if p := ix.For("alice"); p.Policy() != nil {
		t.Fatalf("no policy at all: %+v", p)
	}
	minute := quotas.Limit{Window: "1m"}.Scope()
	ix.Put(quotas.Default, &quotas.Policy{Limits: []quotas.Limit{{Window: "60s", Limit: 100}}}, t0)
	if p := ix.For("alice"); p.Policy().Client != quotas.Default || p.Since != t0.UnixNano() {
		t.Errorf("alice under the default: %+v", p)
	} else if n, ok := p.Limit(minute); !ok || n != 100 {
		t.Errorf("the default's minute (written 60s): %d %v", n, ok)
	}
	ix.Put("alice", &quotas.Policy{Limits: []quotas.Limit{{Window: "1d", Limit: 5}, {Window: "1m", Endpoint: "POST /users", Limit: 3}}}, t0.Add(time.Second))
	p := ix.For("alice")
	if p.Policy().Client != "alice" || p.Since != t0.Add(time.Second).UnixNano() {
		t.Errorf("alice's own: %+v", p)
	}
	if _, ok := p.Limit(minute); ok {
		t.Error("alice's own policy has no limit of all calls per minute; the default's does not apply to her")
	}
	if n, ok := p.Limit(quotas.Limit{Window: "1m", Endpoint: "POST /users"}.Scope()); !ok || n != 3 {
		t.Errorf("alice's POST /users per minute: %d %v", n, ok)
	}
	if p := ix.For("bob"); p.Policy().Client != quotas.Default {
		t.Errorf("bob: %+v", p)
	}
	// Deleted: back to the default, in force for her since the deletion.
	ix.Delete("alice", t0.Add(time.Minute))
	if p := ix.For("alice"); p.Policy().Client != quotas.Default || p.Since != t0.Add(time.Minute).UnixNano() {
		t.Errorf("alice after her policy's deletion: %+v", p)
	}
	ix.Delete(quotas.Default, t0.Add(time.Hour))
	if p := ix.For("alice"); p.Policy() != nil {
		t.Errorf("no policy left: %+v", p)
	}
}

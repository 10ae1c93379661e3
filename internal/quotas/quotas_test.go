package quotas_test

import (
	"strings"
	"testing"

	"github.com/inarious/inarious/internal/quotas"
	"github.com/inarious/inarious/internal/windows"
)

func TestValidate(t *testing.T) {
	w := windows.Default()
	good := quotas.Policy{Client: "alice", Limits: []quotas.Limit{
		{Window: "1m", Limit: 1000}, {Window: "1d", Limit: 0}, {Window: "1m", Limit: 5, Endpoint: "POST /users"},
		{Window: "1m", Limit: 5, Service: "shop", Endpoint: "POST /users"},
	}}
	if bad := good.Validate(w); len(bad) != 0 {
		t.Fatalf("a good policy: %v", bad)
	}
	for name, tc := range map[string]struct {
		p     quotas.Policy
		field string
		says  string
	}{
		"window not kept":   {quotas.Policy{Client: "a", Limits: []quotas.Limit{{Window: "5m", Limit: 1}}}, "limits[0].window", "1m, 1h, 1d"},
		"window garbage":    {quotas.Policy{Client: "a", Limits: []quotas.Limit{{Window: "soon", Limit: 1}}}, "limits[0].window", "not a usage window"},
		"window missing":    {quotas.Policy{Client: "a", Limits: []quotas.Limit{{Limit: 1}}}, "limits[0].window", "required"},
		"no limits":         {quotas.Policy{Client: "a"}, "limits", "1 to 32"},
		"limit too large":   {quotas.Policy{Client: "a", Limits: []quotas.Limit{{Window: "1m", Limit: quotas.MaxLimit + 1}}}, "limits[0].limit", "whole number"},
		"endpoint no route": {quotas.Policy{Client: "a", Limits: []quotas.Limit{{Window: "1m", Limit: 1, Endpoint: "GET users"}}}, "limits[0].endpoint", "GET /users/{id}"},
		"endpoint lower":    {quotas.Policy{Client: "a", Limits: []quotas.Limit{{Window: "1m", Limit: 1, Endpoint: "get /users"}}}, "limits[0].endpoint", "method"},
		"service":           {quotas.Policy{Client: "a", Limits: []quotas.Limit{{Window: "1m", Limit: 1, Service: "a shop"}}}, "limits[0].service", "letters"},
		"duplicate":         {quotas.Policy{Client: "a", Limits: []quotas.Limit{{Window: "1m", Limit: 1}, {Window: "1m", Limit: 2}}}, "limits[1].window", "limits[0]"},
		"client empty":      {quotas.Policy{Client: "", Limits: []quotas.Limit{{Window: "1m", Limit: 1}}}, "client", "UTF-8"},
		"client too long":   {quotas.Policy{Client: strings.Repeat("c", 257), Limits: []quotas.Limit{{Window: "1m", Limit: 1}}}, "client", "256"},
	} {
		bad := tc.p.Validate(w)
		if msg, ok := bad[tc.field]; !ok || !strings.Contains(msg, tc.says) || len(bad) != 1 {
			t.Errorf("%s: %v, want only %s saying %q", name, bad, tc.field, tc.says)
		}
	}
	if bad := (quotas.Policy{Client: "a", Limits: []quotas.Limit{{Window: "1m", Limit: 1}}}).Validate(windows.Config{}); !strings.Contains(bad["limits[0].window"], "off") {
		t.Errorf("windows off: %v, want the window refused as windowed usage is off", bad)
	}
}

func TestLimitName(t *testing.T) {
	for l, want := range map[quotas.Limit]string{
		{Window: "1m"}:                                      "1m",
		{Window: "1h", Endpoint: "GET /x"}:                  "1h GET /x",
		{Window: "1d", Endpoint: "GET /x", Service: "shop"}: "1d shop GET /x",
	} {
		if got := l.Name(); got != want {
			t.Errorf("%+v: %q, want %q", l, got, want)
		}
	}
}

package app_test

import (
	"net/http"
	"testing"

	"github.com/inarious/inarious/internal/app"
	"github.com/inarious/inarious/internal/app/apptest"
	"github.com/inarious/inarious/internal/auth"
)

// With API keys, the debug pages (goka's and pprof) are for admins only, as
// the README says.
func TestDebugPagesNeedAdminWithAPIKeys(t *testing.T) {
	sys := apptest.Start(t, nil, func(c *app.Config) {
		c.Kafka.Partitions = 1
		c.DebugPages = true
		c.APIKeys = "ops:admin:" + auth.Hash("ops-key") + ";bob:usage:read:" + auth.Hash("bob-key")
	})
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/goka/monitor/"} {
		for key, want := range map[string]int{"": http.StatusUnauthorized, "bob-key": http.StatusForbidden, "ops-key": http.StatusOK} {
			req, err := http.NewRequest(http.MethodGet, sys.Base+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if key != "" {
				req.Header.Set(auth.KeyHeader, key)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Errorf("GET %s with key %q = %d, want %d", path, key, resp.StatusCode, want)
			}
		}
	}
}

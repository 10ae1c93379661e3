package app_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/inarious/inarious/internal/app"
	"github.com/inarious/inarious/internal/app/apptest"
	"github.com/inarious/inarious/internal/auth"
)

func TestAPIKeysConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(file, []byte("alice:usage:read:"+auth.Hash("a")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	list := "ops:admin:" + auth.Hash("o") + ";bob:users:read:" + auth.Hash("b")
	cases := []struct {
		name    string
		args    []string
		env     map[string]string
		keys    int
		wantErr string
	}{
		{"off by default", nil, nil, 0, ""},
		{"file flag", []string{"--api-keys-file", file}, nil, 1, ""},
		{"file env", nil, map[string]string{"INARIOUS_API_KEYS_FILE": file}, 1, ""},
		{"list env", nil, map[string]string{"INARIOUS_API_KEYS": list}, 2, ""},
		{"file and list", []string{"--api-keys-file", file}, map[string]string{"INARIOUS_API_KEYS": list}, 3, ""},
		{"missing file", []string{"--api-keys-file", file + ".nope"}, nil, 0, "api keys file"},
		{"plaintext key", nil, map[string]string{"INARIOUS_API_KEYS": "ops:admin:hunter2"}, 0, "SHA-256"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := app.Parse("test", c.args, func(k string) string { return c.env[k] })
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			keys, err := auth.Load(cfg.APIKeysFile, cfg.APIKeys)
			if err != nil || keys.Len() != c.keys {
				t.Errorf("%d keys, %v; want %d", keys.Len(), err, c.keys)
			}
		})
	}
}

// TestAPIKeysGuardTheRoutesAppDeclares checks the routes app itself adds
// (/metrics, the dashboard, the debug pages) with keys on, end to end.
func TestAPIKeysGuardTheRoutesAppDeclares(t *testing.T) {
	sys := apptest.Start(t, nil, func(c *app.Config) {
		c.Kafka.Partitions = 2
		c.DebugPages = true
		c.APIKeys = "ops:admin:" + auth.Hash("ops-key") + ";alice:usage:read:" + auth.Hash("alice-key")
	})
	get := func(path, key string) int {
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
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, c := range []struct {
		path, key string
		want      int
	}{
		{"/metrics", "", 200},
		{"/dashboard", "", 401},
		{"/dashboard", "alice-key", 403},
		{"/dashboard", "ops-key", 200},
		{"/debug/pprof/", "", 401},
		{"/debug/goka/monitor/", "alice-key", 403},
		{"/debug/goka/monitor/", "ops-key", 200},
		{"/debug/pprof/heap", "ops-key", 200},
		{"/debug/no-such-page", "ops-key", 404},
	} {
		if got := get(c.path, c.key); got != c.want {
			t.Errorf("GET %s with key %q = %d, want %d", c.path, c.key, got, c.want)
		}
	}
}

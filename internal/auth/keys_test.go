package auth_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/inarious/inarious/internal/auth"
)

func TestHashIsSha256sum(t *testing.T) {
	// printf %s abc | sha256sum
	if got := auth.Hash("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("Hash(abc) = %s", got)
	}
}

func TestParseAndLookup(t *testing.T) {
	text := "# comment\n\n" +
		"alice:usage:read:" + auth.Hash("alice-key") + "\n" +
		"  bob : usage:read , users:write : " + strings.ToUpper(auth.Hash("bob-key")) + "\n" +
		"alice:usage:read:" + auth.Hash("alice-key-2") + "\n" + // rotation: two keys, one client
		"ops:admin:" + auth.Hash("ops-key") + "\n"
	keys, err := auth.Parse(strings.NewReader(text), "test")
	if err != nil {
		t.Fatal(err)
	}
	if keys.Len() != 4 || !slices.Equal(keys.Clients(), []string{"alice", "bob", "ops"}) {
		t.Fatalf("Len %d Clients %v", keys.Len(), keys.Clients())
	}
	cases := []struct {
		key, client string
		ok          bool
	}{
		{"alice-key", "alice", true},
		{"alice-key-2", "alice", true},
		{"bob-key", "bob", true},
		{"ops-key", "ops", true},
		{"alice-key ", "", false},
		{"nobody", "", false},
		{"", "", false},
		{auth.Hash("alice-key"), "", false}, // the stored hash is not a key
	}
	for _, c := range cases {
		p, ok := keys.Lookup(c.key)
		if ok != c.ok || p.Client != c.client {
			t.Errorf("Lookup(%q) = %q %v, want %q %v", c.key, p.Client, ok, c.client, c.ok)
		}
	}
	if p, _ := keys.Lookup("bob-key"); !slices.Equal(p.Scopes, []auth.Scope{auth.UsageRead, auth.UsersWrite}) {
		t.Errorf("bob scopes %v", p.Scopes)
	}
}

func TestScopeImplication(t *testing.T) {
	cases := []struct {
		have []auth.Scope
		want auth.Scope
		ok   bool
	}{
		{[]auth.Scope{auth.UsageRead}, auth.UsageRead, true},
		{[]auth.Scope{auth.UsageRead}, auth.UsersRead, false},
		{[]auth.Scope{auth.UsersWrite}, auth.UsersRead, true},
		{[]auth.Scope{auth.UsersRead}, auth.UsersWrite, false},
		{[]auth.Scope{auth.UsersWrite}, auth.UsageRead, false},
		{[]auth.Scope{auth.Admin}, auth.UsersWrite, true},
		{[]auth.Scope{auth.Admin}, auth.UsageRead, true},
		{nil, auth.UsageRead, false},
	}
	for _, c := range cases {
		if got := (auth.Principal{Scopes: c.have}).Has(c.want); got != c.ok {
			t.Errorf("%v Has %s = %v", c.have, c.want, got)
		}
	}
}

func TestParseRejects(t *testing.T) {
	const secret = "sup3r-s3cret-plaintext"
	h := auth.Hash("k")
	cases := []struct{ name, line, want string }{
		{"plaintext key instead of hash", "alice:usage:read:" + secret, "SHA-256"},
		{"too few fields", "alice:" + h, "client:scope1,scope2:sha256hex"},
		{"hash not hex", "alice:usage:read:" + strings.Repeat("z", 64), "hex"},
		{"unknown scope", "alice:usage:write:" + h, "unknown scope"},
		{"public is no key's scope", "alice:public:" + h, "unknown scope"},
		{"no scopes", "alice::" + h, "no scopes"},
		{"empty client", ":admin:" + h, "client name"},
		{"client with slash", "a/b:admin:" + h, "client name"},
		{"client is an IP", "10.0.0.1:admin:" + h, "IP address"},
		{"duplicate key", "a:admin:" + h + "\nb:admin:" + h, "already configured"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := auth.Parse(strings.NewReader(c.line), "keys")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, c.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error echoes the plaintext key: %v", err)
			}
		})
	}
}

// A key made with `openssl rand -hex 32` looks like a hash: pasted into the
// file in plaintext it is taken as a hash, and the key itself never matches.
func TestPlaintextHexKeyNeverAuthenticates(t *testing.T) {
	key := strings.Repeat("0123456789abcdef", 4)
	keys, err := auth.Parse(strings.NewReader("alice:admin:"+key), "keys")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := keys.Lookup(key); ok {
		t.Error("a plaintext key in the file authenticated")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "keys")
	if err := os.WriteFile(file, []byte("# keys\nalice:usage:read:"+auth.Hash("a")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("# nothing yet\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	keys, err := auth.Load("", "")
	if err != nil || keys.Len() != 0 {
		t.Fatalf("nothing configured: %d keys, %v", keys.Len(), err)
	}
	keys, err = auth.Load(file, "bob:users:read:"+auth.Hash("b")+"; ops:admin:"+auth.Hash("o")+";")
	if err != nil {
		t.Fatal(err)
	}
	for key, client := range map[string]string{"a": "alice", "b": "bob", "o": "ops"} {
		if p, ok := keys.Lookup(key); !ok || p.Client != client {
			t.Errorf("Lookup(%s) = %q %v", key, p.Client, ok)
		}
	}
	if keys, err := auth.Load("", "ops:admin:"+auth.Hash("o")); err != nil || keys.Len() != 1 {
		t.Errorf("list only: %d %v", keys.Len(), err)
	}
	for name, load := range map[string]func() (*auth.Keys, error){
		"missing file": func() (*auth.Keys, error) { return auth.Load(filepath.Join(dir, "nope"), "") },
		"empty file":   func() (*auth.Keys, error) { return auth.Load(empty, "") },
		"empty list":   func() (*auth.Keys, error) { return auth.Load("", " ; ;") },
		"bad list":     func() (*auth.Keys, error) { return auth.Load(file, "bob:users:read:plain") },
		"dup across":   func() (*auth.Keys, error) { return auth.Load(file, "x:admin:"+auth.Hash("a")) },
	} {
		if _, err := load(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestEventsWriteScope(t *testing.T) {
	keys, err := auth.Parse(strings.NewReader("shop:events:write:"+auth.Hash("k")), "test")
	if err != nil {
		t.Fatal(err)
	}
	p, ok := keys.Lookup("k")
	if !ok || !p.Has(auth.EventsWrite) || p.Has(auth.UsageRead) || p.Has(auth.UsersRead) || p.Has(auth.Admin) {
		t.Errorf("events:write key = %+v, %v: it sends events and reads nothing", p, ok)
	}
	if !(auth.Principal{Scopes: []auth.Scope{auth.Admin}}).Has(auth.EventsWrite) {
		t.Error("admin does not imply events:write")
	}
}

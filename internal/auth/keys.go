// Package auth adds optional API keys with scopes to the API.
//
// Keys are configured as lines of the form
//
//	client:scope1,scope2:sha256hex
//
// where sha256hex is the hex SHA-256 of the key (never the key itself), in a
// file (--api-keys-file) and/or in --api-keys / INARIOUS_API_KEYS, where
// entries are separated by ';' or newlines. With no keys configured the API
// is open, as without this package. See README.md.
package auth

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// Scope is a permission a key carries.
type Scope string

// The scopes. Admin implies every other; users:write implies users:read.
const (
	// UsageRead reads the key's own client usage: GET /usage/{own client}.
	UsageRead Scope = "usage:read"
	// UsersRead reads users: GET /users, GET /users/{id}.
	UsersRead Scope = "users:read"
	// UsersWrite creates, replaces, patches and deletes users, and reads them.
	UsersWrite Scope = "users:write"
	// EventsWrite sends activity events of another API: POST /v1/traces
	// (OTLP) and POST /events (JSON batches). It reads nothing.
	EventsWrite Scope = "events:write"
	// QuotasCheck asks whether any client's call is within its quota:
	// GET /quotas/{client}/check, for services enforcing Inarious' quotas.
	QuotasCheck Scope = "quotas:check"
	// Admin may do everything: any client's usage, the usage list, the dashboard.
	Admin Scope = "admin"
	// Public marks a route open to every caller, with or without a key. It
	// is no key's scope (Parse rejects it): a route must be declared open.
	Public Scope = "public"
)

var knownScopes = []Scope{UsageRead, UsersRead, UsersWrite, EventsWrite, QuotasCheck, Admin}

// Principal is who a key belongs to.
type Principal struct {
	// Client is the name usage is counted under for this key's requests.
	Client string
	Scopes []Scope
}

// Has reports whether p may act with scope s, counting implied scopes.
func (p Principal) Has(s Scope) bool {
	for _, have := range p.Scopes {
		if have == s || have == Admin || (have == UsersWrite && s == UsersRead) {
			return true
		}
	}
	return false
}

type entry struct {
	hash      [sha256.Size]byte
	principal Principal
}

// Keys is a set of hashed API keys. The zero value holds none.
type Keys struct {
	entries []entry
}

// Len is the number of keys; 0 means authentication is off.
func (k *Keys) Len() int {
	if k == nil {
		return 0
	}
	return len(k.entries)
}

// Clients lists the distinct client names, sorted.
func (k *Keys) Clients() []string {
	var out []string
	if k != nil {
		for _, e := range k.entries {
			out = append(out, e.principal.Client)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Lookup finds the principal of a presented key. It hashes the key and
// compares the digest with every stored one in constant time, without
// stopping at a match, so timing does not tell how much of a key is right.
func (k *Keys) Lookup(key string) (Principal, bool) {
	if k == nil || key == "" {
		return Principal{}, false
	}
	sum := sha256.Sum256([]byte(key))
	found := -1
	for i := range k.entries {
		if subtle.ConstantTimeCompare(sum[:], k.entries[i].hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Principal{}, false
	}
	return k.entries[found].principal, true
}

// Hash is the hex SHA-256 of key, as the key files hold it; the same as
// `printf %s "$KEY" | sha256sum`.
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Load reads the keys in file (if not empty) and list (entries separated by
// ';' or newlines). Neither given yields no keys, i.e. authentication off;
// a source given but holding no key is an error, so a botched configuration
// never silently leaves the API open.
func Load(file, list string) (*Keys, error) {
	k := &Keys{}
	if file != "" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("api keys file: %w", err)
		}
		defer f.Close()
		n, err := k.read(f, file)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("api keys file %s holds no keys", file)
		}
	}
	if strings.TrimSpace(list) != "" {
		n, err := k.read(strings.NewReader(strings.ReplaceAll(list, ";", "\n")), "api keys list")
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, errors.New("api keys list holds no keys")
		}
	}
	return k, nil
}

// Parse reads key lines from r; source names r in errors.
func Parse(r io.Reader, source string) (*Keys, error) {
	k := &Keys{}
	if _, err := k.read(r, source); err != nil {
		return nil, err
	}
	return k, nil
}

// read adds the entries of r, skipping blank lines and # comments.
func (k *Keys) read(r io.Reader, source string) (int, error) {
	sc := bufio.NewScanner(r)
	n, line := 0, 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		e, err := parseEntry(text)
		if err != nil {
			// Never echo the line: it may be a plaintext key pasted by mistake.
			return n, fmt.Errorf("%s: entry %d: %w", source, line, err)
		}
		for _, old := range k.entries {
			if old.hash == e.hash {
				return n, fmt.Errorf("%s: entry %d: the same key hash is already configured for client %q", source, line, old.principal.Client)
			}
		}
		k.entries = append(k.entries, e)
		n++
	}
	if err := sc.Err(); err != nil {
		return n, fmt.Errorf("%s: %w", source, err)
	}
	return n, nil
}

func parseEntry(text string) (entry, error) {
	parts := strings.Split(text, ":")
	// Scopes contain ':' themselves, so split off the name and the hash.
	if len(parts) < 3 {
		return entry{}, errors.New("want client:scope1,scope2:sha256hex")
	}
	client := strings.TrimSpace(parts[0])
	digest := strings.TrimSpace(parts[len(parts)-1])
	scopeText := strings.Join(parts[1:len(parts)-1], ":")
	if err := validClient(client); err != nil {
		return entry{}, err
	}
	var e entry
	e.principal.Client = client
	if len(digest) != 2*sha256.Size {
		return entry{}, errors.New("the last field must be the key's SHA-256 as 64 hex digits (printf %s \"$KEY\" | sha256sum), never the key itself")
	}
	if _, err := hex.Decode(e.hash[:], []byte(digest)); err != nil {
		return entry{}, errors.New("the last field must be the key's SHA-256 as 64 hex digits")
	}
	for _, s := range strings.Split(scopeText, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(knownScopes, Scope(s)) {
			return entry{}, fmt.Errorf("unknown scope %q (known: usage:read, users:read, users:write, events:write, admin)", s)
		}
		if !slices.Contains(e.principal.Scopes, Scope(s)) {
			e.principal.Scopes = append(e.principal.Scopes, Scope(s))
		}
	}
	if len(e.principal.Scopes) == 0 {
		return entry{}, fmt.Errorf("client %q has no scopes", client)
	}
	return e, nil
}

const maxClientLen = 128

// validClient keeps key names usable as Kafka keys and in /usage/{client},
// and apart from the network addresses unauthenticated usage is counted under.
func validClient(c string) error {
	if c == "" || len(c) > maxClientLen {
		return fmt.Errorf("client name must be 1 to %d characters", maxClientLen)
	}
	for i := 0; i < len(c); i++ {
		b := c[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '.' || b == '_' || b == '-' || b == '@') {
			return fmt.Errorf("client name %q may hold only letters, digits and . _ - @", c)
		}
	}
	if _, err := netip.ParseAddr(c); err == nil {
		return fmt.Errorf("client name %q is an IP address, which would mix it with unauthenticated usage", c)
	}
	return nil
}

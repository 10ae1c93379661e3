package users_test

import (
	"errors"
	"sort"
	"strings"
	"testing"

	"github.com/inarious/inarious/internal/users"
)

func TestNewUserValidate(t *testing.T) {
	long := strings.Repeat("é", users.MaxNameRunes) // 200 runes, 400 bytes
	cases := []struct {
		name    string
		in      users.NewUser
		badKeys []string
	}{
		{"ok", users.NewUser{Name: "Ann", Email: "ann@example.com"}, nil},
		{"max name runes", users.NewUser{Name: long, Email: "a@b.example"}, nil},
		{"name too long", users.NewUser{Name: long + "x", Email: "a@b.example"}, []string{"name"}},
		{"empty both", users.NewUser{}, []string{"email", "name"}},
		{"padded name", users.NewUser{Name: " Ann", Email: "a@b.example"}, []string{"name"}},
		{"control char", users.NewUser{Name: "A\x00nn", Email: "a@b.example"}, []string{"name"}},
		{"bad utf8 name", users.NewUser{Name: "\xff", Email: "a@b.example"}, []string{"name"}},
		{"display name", users.NewUser{Name: "Ann", Email: "Ann <ann@example.com>"}, []string{"email"}},
		{"padded email", users.NewUser{Name: "Ann", Email: " ann@example.com"}, []string{"email"}},
		{"no at", users.NewUser{Name: "Ann", Email: "ann.example.com"}, []string{"email"}},
		{"email too long", users.NewUser{Name: "Ann", Email: strings.Repeat("a", 64) + "@" + strings.Repeat("b", 190) + ".com"}, []string{"email"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.in.Validate()
			if tc.badKeys == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var ve *users.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate() = %v, want *ValidationError", err)
			}
			var keys []string
			for k := range ve.Fields {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			if strings.Join(keys, ",") != strings.Join(tc.badKeys, ",") {
				t.Fatalf("invalid fields = %v, want %v", keys, tc.badKeys)
			}
		})
	}
}

func TestPatchValidateOnlyPresentFields(t *testing.T) {
	if err := (users.UserPatch{}).Validate(); err != nil {
		t.Fatalf("empty patch: %v", err)
	}
	empty := ""
	var ve *users.ValidationError
	if err := (users.UserPatch{Name: &empty}).Validate(); !errors.As(err, &ve) || ve.Fields["name"] == "" {
		t.Fatalf("empty name patch: got %v", err)
	}
	if len(ve.Fields) != 1 {
		t.Fatalf("only name should be reported, got %v", ve.Fields)
	}
}

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for range 1000 {
		id := users.NewID()
		if !users.ValidID(id) {
			t.Fatalf("NewID() = %q is not ValidID", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
		// Timestamp prefix (first 9 chars = top 45 bits of the ms clock) never goes backwards.
		if id[:9] < prev {
			t.Fatalf("id %q sorts before previous prefix %q", id, prev)
		}
		prev = id[:9]
	}
	for _, bad := range []string{"", "nope", strings.Repeat("0", 25), strings.Repeat("0", 25) + "1", strings.Repeat("u", 26), "../" + strings.Repeat("0", 23)} {
		if users.ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}

func TestEffectiveLimit(t *testing.T) {
	for in, want := range map[int]int{-1: 50, 0: 50, 1: 1, 500: 500, 501: 500} {
		if got := (users.ListOptions{Limit: in}).EffectiveLimit(); got != want {
			t.Errorf("EffectiveLimit(%d) = %d, want %d", in, got, want)
		}
	}
}

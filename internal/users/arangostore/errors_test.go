package arangostore

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/arangodb/go-driver/v2/arangodb/shared"

	"github.com/inarious/inarious/internal/users"
)

func arangoErr(code, num int) error {
	return shared.ArangoError{HasError: true, Code: code, ErrorNum: num, ErrorMessage: "server said no"}
}

func TestMapError(t *testing.T) {
	cases := []struct {
		name string
		in   error
		want error // nil with in != nil means "not a domain error"
	}{
		{"unique constraint", arangoErr(409, shared.ErrArangoUniqueConstraintViolated), users.ErrDuplicateEmail},
		{"unique constraint wrapped", fmt.Errorf("insert: %w", arangoErr(409, 1210)), users.ErrDuplicateEmail},
		{"if-match failed", arangoErr(412, shared.ErrArangoConflict), users.ErrStaleRevision},
		{"document not found", arangoErr(404, shared.ErrArangoDocumentNotFound), users.ErrNotFound},
		{"bare 404", arangoErr(404, 0), users.ErrNotFound},
		{"bad key", arangoErr(400, shared.ErrArangoDocumentKeyBad), users.ErrNotFound},
		{"collection missing", arangoErr(404, shared.ErrArangoDataSourceNotFound), nil},
		{"database missing", arangoErr(404, shared.ErrArangoDatabaseNotFound), nil},
		{"write-write conflict", arangoErr(409, shared.ErrArangoConflict), nil},
		{"server error", arangoErr(500, shared.ErrInternal), nil},
		{"network", errors.New("dial tcp: connection refused"), nil},
	}
	domain := []error{users.ErrDuplicateEmail, users.ErrStaleRevision, users.ErrNotFound}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := mapError(tc.in)
			if tc.want != nil {
				if !errors.Is(got, tc.want) {
					t.Fatalf("mapError = %v, want %v", got, tc.want)
				}
				return
			}
			for _, d := range domain {
				if errors.Is(got, d) {
					t.Fatalf("mapError = %v, must not be a domain error", got)
				}
			}
			if !errors.Is(got, tc.in) || !strings.HasPrefix(got.Error(), "arangostore: ") {
				t.Fatalf("mapError = %v, want the original error wrapped", got)
			}
		})
	}
	if mapError(nil) != nil {
		t.Fatal("mapError(nil) != nil")
	}
}

func TestRetryConflicts(t *testing.T) {
	conflict := arangoErr(409, shared.ErrArangoConflict)
	calls := 0
	err := retryConflicts(func() error {
		calls++
		if calls < 3 {
			return conflict
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("err %v after %d calls, want success on the 3rd", err, calls)
	}
	calls = 0
	stale := arangoErr(412, shared.ErrArangoConflict)
	if err := retryConflicts(func() error { calls++; return stale }); calls != 1 || !errors.Is(err, stale) {
		t.Fatalf("412 retried: %d calls, err %v", calls, err)
	}
	calls = 0
	if err := retryConflicts(func() error { calls++; return conflict }); calls < 2 || !errors.Is(err, conflict) {
		t.Fatalf("persistent conflict: %d calls, err %v", calls, err)
	}
	if err := mapConditional(conflict, "rev1"); !errors.Is(err, users.ErrStaleRevision) {
		t.Errorf("conditional conflict = %v, want ErrStaleRevision", err)
	}
	if err := mapConditional(conflict, ""); errors.Is(err, users.ErrStaleRevision) {
		t.Errorf("unconditional conflict = %v, must not claim a stale revision", err)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{URL: "http://localhost:8529", Database: "inarious", User: "root", Password: "pw"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	if err := (Config{URL: "https://db:8529", Database: "x"}).Validate(); err != nil {
		t.Fatalf("no-auth config: %v", err)
	}
	bad := map[string]Config{
		"no url":      {Database: "x"},
		"bad scheme":  {URL: "tcp://db:8529", Database: "x"},
		"no host":     {URL: "http://", Database: "x"},
		"no database": {URL: "http://db:8529"},
		"slash in db": {URL: "http://db:8529", Database: "a/b"},
		"pw no user":  {URL: "http://db:8529", Database: "x", Password: "pw"},
	}
	for name, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate() = nil", name)
		}
	}
}

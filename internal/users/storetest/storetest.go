// Package storetest is the contract every users.Store must satisfy. Backends
// call Run from their own tests so that all of them are held to one spec.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/inarious/inarious/internal/users"
)

// Run executes the whole contract. newStore must return an empty store that
// is private to the calling test; Run closes it.
func Run(t *testing.T, newStore func(t *testing.T) users.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s users.Store)
	}{
		{"CreateAndGet", testCreateAndGet},
		{"CreateValidation", testCreateValidation},
		{"DuplicateEmailOnCreate", testDuplicateEmailOnCreate},
		{"Replace", testReplace},
		{"Patch", testPatch},
		{"UpdateToOtherUsersEmail", testUpdateToOtherUsersEmail},
		{"EmailFreedAfterChangeAndDelete", testEmailFreed},
		{"IfMatch", testIfMatch},
		{"Delete", testDelete},
		{"NotFound", testNotFound},
		{"Pagination", testPagination},
		{"PaginationEmptyStore", testPaginationEmpty},
		{"ConcurrentCreateSameEmail", testConcurrentCreateSameEmail},
		{"ConcurrentUpdateSameIfMatch", testConcurrentUpdateSameIfMatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

func mustCreate(t *testing.T, s users.Store, name, email string) users.User {
	t.Helper()
	u, err := s.Create(context.Background(), users.NewUser{Name: name, Email: email})
	if err != nil {
		t.Fatalf("Create(%q, %q): %v", name, email, err)
	}
	return u
}

func mustGet(t *testing.T, s users.Store, id string) users.User {
	t.Helper()
	u, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%q): %v", id, err)
	}
	return u
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

// sameUser compares with time.Equal so backends may keep any time zone.
func sameUser(a, b users.User) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Email == b.Email && a.Rev == b.Rev &&
		a.CreatedAt.Equal(b.CreatedAt) && a.UpdatedAt.Equal(b.UpdatedAt)
}

func ptr(s string) *string { return &s }

func emailN(i int) string { return fmt.Sprintf("user%03d@example.com", i) }

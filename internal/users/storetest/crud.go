package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/inarious/inarious/internal/users"
)

func testCreateAndGet(t *testing.T, s users.Store) {
	u := mustCreate(t, s, "Ann Example", "Ann@Example.com")
	if !users.ValidID(u.ID) {
		t.Errorf("ID %q is not a valid id", u.ID)
	}
	if u.Rev == "" {
		t.Error("Rev is empty")
	}
	if u.Name != "Ann Example" || u.Email != "Ann@Example.com" {
		t.Errorf("stored %q <%s>, want input unchanged (case kept)", u.Name, u.Email)
	}
	if u.CreatedAt.IsZero() || !u.CreatedAt.Equal(u.UpdatedAt) {
		t.Errorf("CreatedAt=%v UpdatedAt=%v, want equal and non-zero", u.CreatedAt, u.UpdatedAt)
	}
	if got := mustGet(t, s, u.ID); !sameUser(got, u) {
		t.Errorf("Get = %+v, want %+v", got, u)
	}
	v := mustCreate(t, s, "Bob", "bob@example.com")
	if v.ID == u.ID {
		t.Error("two users got the same ID")
	}
}

func testCreateValidation(t *testing.T, s users.Store) {
	_, err := s.Create(context.Background(), users.NewUser{Name: " padded", Email: "not-an-email"})
	var ve *users.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Create(invalid) err = %v, want *ValidationError", err)
	}
	if ve.Fields["name"] == "" || ve.Fields["email"] == "" {
		t.Errorf("fields = %v, want name and email", ve.Fields)
	}
	page, err := s.List(context.Background(), users.ListOptions{})
	if err != nil || len(page.Users) != 0 {
		t.Fatalf("after invalid create: %d users, err %v; want none", len(page.Users), err)
	}
}

func testDuplicateEmailOnCreate(t *testing.T, s users.Store) {
	mustCreate(t, s, "Ann", "ann@example.com")
	_, err := s.Create(context.Background(), users.NewUser{Name: "Other", Email: "ann@example.com"})
	wantErr(t, "same email", err, users.ErrDuplicateEmail)
	_, err = s.Create(context.Background(), users.NewUser{Name: "Other", Email: "ANN@example.COM"})
	wantErr(t, "same email, other case", err, users.ErrDuplicateEmail)
}

func testReplace(t *testing.T, s users.Store) {
	ctx := context.Background()
	u := mustCreate(t, s, "Ann", "ann@example.com")
	r, err := s.Replace(ctx, u.ID, users.NewUser{Name: "Anna", Email: "anna@example.com"}, "")
	if err != nil {
		t.Fatalf("Replace: %v", err)
	}
	if r.ID != u.ID || r.Name != "Anna" || r.Email != "anna@example.com" {
		t.Errorf("Replace = %+v", r)
	}
	if r.Rev == u.Rev || r.Rev == "" {
		t.Errorf("Rev %q -> %q, want a new revision", u.Rev, r.Rev)
	}
	if !r.CreatedAt.Equal(u.CreatedAt) || r.UpdatedAt.Before(u.UpdatedAt) {
		t.Errorf("timestamps: created %v->%v updated %v->%v", u.CreatedAt, r.CreatedAt, u.UpdatedAt, r.UpdatedAt)
	}
	if got := mustGet(t, s, u.ID); !sameUser(got, r) {
		t.Errorf("Get after Replace = %+v, want %+v", got, r)
	}
	// Changing only the case of one's own email is not a conflict.
	if _, err := s.Replace(ctx, u.ID, users.NewUser{Name: "Anna", Email: "ANNA@example.com"}, ""); err != nil {
		t.Fatalf("Replace with own email in other case: %v", err)
	}
	var ve *users.ValidationError
	if _, err := s.Replace(ctx, u.ID, users.NewUser{Name: "", Email: "anna@example.com"}, ""); !errors.As(err, &ve) {
		t.Fatalf("Replace(invalid) err = %v, want *ValidationError", err)
	}
}

func testPatch(t *testing.T, s users.Store) {
	ctx := context.Background()
	u := mustCreate(t, s, "Ann", "ann@example.com")
	p1, err := s.Patch(ctx, u.ID, users.UserPatch{Name: ptr("Anna")}, "")
	if err != nil {
		t.Fatalf("Patch name: %v", err)
	}
	if p1.Name != "Anna" || p1.Email != "ann@example.com" || p1.Rev == u.Rev {
		t.Errorf("Patch name = %+v (old rev %q)", p1, u.Rev)
	}
	p2, err := s.Patch(ctx, u.ID, users.UserPatch{Email: ptr("anna@example.com")}, p1.Rev)
	if err != nil {
		t.Fatalf("Patch email: %v", err)
	}
	if p2.Name != "Anna" || p2.Email != "anna@example.com" || p2.Rev == p1.Rev {
		t.Errorf("Patch email = %+v (old rev %q)", p2, p1.Rev)
	}
	if !p2.CreatedAt.Equal(u.CreatedAt) {
		t.Errorf("CreatedAt changed: %v -> %v", u.CreatedAt, p2.CreatedAt)
	}
	if got := mustGet(t, s, u.ID); !sameUser(got, p2) {
		t.Errorf("Get after Patch = %+v, want %+v", got, p2)
	}
	var ve *users.ValidationError
	if _, err := s.Patch(ctx, u.ID, users.UserPatch{Email: ptr("nope")}, ""); !errors.As(err, &ve) {
		t.Fatalf("Patch(invalid) err = %v, want *ValidationError", err)
	}
	if got := mustGet(t, s, u.ID); got.Rev != p2.Rev {
		t.Error("a rejected patch changed the revision")
	}
}

func testUpdateToOtherUsersEmail(t *testing.T, s users.Store) {
	ctx := context.Background()
	a := mustCreate(t, s, "Ann", "ann@example.com")
	b := mustCreate(t, s, "Bob", "bob@example.com")
	_, err := s.Replace(ctx, b.ID, users.NewUser{Name: "Bob", Email: "Ann@Example.com"}, "")
	wantErr(t, "Replace to other user's email", err, users.ErrDuplicateEmail)
	_, err = s.Patch(ctx, b.ID, users.UserPatch{Email: ptr("ann@example.com")}, "")
	wantErr(t, "Patch to other user's email", err, users.ErrDuplicateEmail)
	if got := mustGet(t, s, b.ID); !sameUser(got, b) {
		t.Errorf("b changed by failed updates: %+v, want %+v", got, b)
	}
	if got := mustGet(t, s, a.ID); !sameUser(got, a) {
		t.Errorf("a changed by b's failed updates: %+v", got)
	}
}

func testEmailFreed(t *testing.T, s users.Store) {
	ctx := context.Background()
	a := mustCreate(t, s, "Ann", "ann@example.com")
	if _, err := s.Patch(ctx, a.ID, users.UserPatch{Email: ptr("ann2@example.com")}, ""); err != nil {
		t.Fatalf("Patch: %v", err)
	}
	b := mustCreate(t, s, "Bea", "ann@example.com") // old email is free again
	if err := s.Delete(ctx, b.ID, ""); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	mustCreate(t, s, "Cat", "ANN@example.com") // freed by delete
}

func testIfMatch(t *testing.T, s users.Store) {
	ctx := context.Background()
	u := mustCreate(t, s, "Ann", "ann@example.com")
	r, err := s.Replace(ctx, u.ID, users.NewUser{Name: "Anna", Email: "ann@example.com"}, u.Rev)
	if err != nil {
		t.Fatalf("Replace with current rev: %v", err)
	}
	_, err = s.Replace(ctx, u.ID, users.NewUser{Name: "Stale", Email: "ann@example.com"}, u.Rev)
	wantErr(t, "Replace with old rev", err, users.ErrStaleRevision)
	_, err = s.Patch(ctx, u.ID, users.UserPatch{Name: ptr("Stale")}, u.Rev)
	wantErr(t, "Patch with old rev", err, users.ErrStaleRevision)
	err = s.Delete(ctx, u.ID, u.Rev)
	wantErr(t, "Delete with old rev", err, users.ErrStaleRevision)
	if got := mustGet(t, s, u.ID); !sameUser(got, r) {
		t.Fatalf("stale writes changed the user: %+v, want %+v", got, r)
	}
	p, err := s.Patch(ctx, u.ID, users.UserPatch{Name: ptr("Annie")}, r.Rev)
	if err != nil {
		t.Fatalf("Patch with current rev: %v", err)
	}
	if err := s.Delete(ctx, u.ID, p.Rev); err != nil {
		t.Fatalf("Delete with current rev: %v", err)
	}
}

func testDelete(t *testing.T, s users.Store) {
	ctx := context.Background()
	u := mustCreate(t, s, "Ann", "ann@example.com")
	keep := mustCreate(t, s, "Bob", "bob@example.com")
	if err := s.Delete(ctx, u.ID, ""); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err := s.Get(ctx, u.ID)
	wantErr(t, "Get after Delete", err, users.ErrNotFound)
	wantErr(t, "second Delete", s.Delete(ctx, u.ID, ""), users.ErrNotFound)
	page, err := s.List(ctx, users.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Users) != 1 || page.Users[0].ID != keep.ID {
		t.Fatalf("List after Delete = %+v, want only %s", page.Users, keep.ID)
	}
}

func testNotFound(t *testing.T, s users.Store) {
	ctx := context.Background()
	mustCreate(t, s, "Ann", "ann@example.com")
	for _, id := range []string{users.NewID(), "not-an-id", ""} {
		_, err := s.Get(ctx, id)
		wantErr(t, "Get("+id+")", err, users.ErrNotFound)
		_, err = s.Replace(ctx, id, users.NewUser{Name: "X", Email: "x@example.com"}, "")
		wantErr(t, "Replace("+id+")", err, users.ErrNotFound)
		_, err = s.Patch(ctx, id, users.UserPatch{Name: ptr("X")}, "")
		wantErr(t, "Patch("+id+")", err, users.ErrNotFound)
		wantErr(t, "Delete("+id+")", s.Delete(ctx, id, ""), users.ErrNotFound)
	}
	// A failed Replace on a missing id must not reserve the email.
	mustCreate(t, s, "X", "x@example.com")
}

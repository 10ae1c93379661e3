package boltstore_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/inarious/inarious/internal/users"
	"github.com/inarious/inarious/internal/users/boltstore"
	"github.com/inarious/inarious/internal/users/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) users.Store {
		s, err := boltstore.Open(filepath.Join(t.TempDir(), "users.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestReopenKeepsData(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "users.db")
	s, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.Create(ctx, users.NewUser{Name: "Ann", Email: "ann@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Get(ctx, u.ID)
	if err != nil {
		t.Fatalf("Get after reopen: %v", err)
	}
	if got != u {
		t.Errorf("after reopen got %+v, want %+v", got, u)
	}
	// The email index survived too, and revisions keep advancing.
	if _, err := s.Create(ctx, users.NewUser{Name: "Bob", Email: "ANN@example.com"}); err == nil {
		t.Error("duplicate email accepted after reopen")
	}
	r, err := s.Patch(ctx, u.ID, users.UserPatch{}, u.Rev)
	if err != nil {
		t.Fatal(err)
	}
	if r.Rev == u.Rev {
		t.Error("revision reused after reopen")
	}
}

func TestOpenLockedFileFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.db")
	s, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// bbolt's flock is per open file description, so a second Open in the same
	// process times out instead of corrupting the file.
	if s2, err := boltstore.Open(path); err == nil {
		s2.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
}

// Concurrent creates share commits; every one acknowledged must be in the
// file after Close, and a write after Close fails instead of hanging.
func TestConcurrentCreatesAreDurable(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "users.db")
	s, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	const n = 400 // fewer than users.MaxLimit: one page holds them all
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := s.Create(ctx, users.NewUser{Name: "U", Email: fmt.Sprintf("u%d@example.com", i)})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, users.NewUser{Name: "Late", Email: "late@example.com"}); !errors.Is(err, boltstore.ErrClosed) {
		t.Fatalf("create after close: %v, want ErrClosed", err)
	}
	s, err = boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	page, err := s.List(ctx, users.ListOptions{Limit: users.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Users) != n {
		t.Fatalf("%d users after reopen, want %d", len(page.Users), n)
	}
}

// Sequential writes are committed one by one, concurrent ones share
// commits, and a lone write after a wave (which gather expects back) is
// still committed.
func TestGroupCommitStats(t *testing.T) {
	ctx := context.Background()
	s, err := boltstore.Open(filepath.Join(t.TempDir(), "users.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 3 {
		if _, err := s.Create(ctx, users.NewUser{Name: "S", Email: fmt.Sprintf("s%d@example.com", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Stats(); got != (boltstore.Stats{Commits: 3, Writes: 3}) {
		t.Fatalf("after 3 sequential creates: %+v, want 3 commits of 1", got)
	}
	const n = 64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := s.Create(ctx, users.NewUser{Name: "C", Email: fmt.Sprintf("c%d@example.com", i)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got := s.Stats()
	if got.Writes != 3+n || got.Commits-3 >= n {
		t.Fatalf("after %d concurrent creates: %+v, want %d writes in fewer than %d commits", n, got, 3+n, 3+n)
	}
	if _, err := s.Create(ctx, users.NewUser{Name: "L", Email: "lone@example.com"}); err != nil {
		t.Fatal(err)
	}
	if after := s.Stats(); after.Writes != got.Writes+1 || after.Commits != got.Commits+1 {
		t.Fatalf("lone create after the wave: %+v, then %+v", got, after)
	}
}

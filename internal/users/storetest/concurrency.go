package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/inarious/inarious/internal/users"
)

const workers = 16

// race runs fn on workers goroutines released together and returns their errors.
func race(fn func(i int) error) []error {
	errs := make([]error, workers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			<-start
			errs[i] = fn(i)
		})
	}
	close(start)
	wg.Wait()
	return errs
}

// exactlyOne checks one nil error and want for every other one.
func exactlyOne(t *testing.T, errs []error, want error) {
	t.Helper()
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, want):
			t.Errorf("worker %d: err = %v, want nil or %v", i, err, want)
		}
	}
	if ok != 1 {
		t.Errorf("%d workers succeeded, want exactly 1", ok)
	}
}

func testConcurrentCreateSameEmail(t *testing.T, s users.Store) {
	errs := race(func(i int) error {
		email := "race@example.com"
		if i%2 == 1 {
			email = "RACE@example.com" // normalisation must hold under races too
		}
		_, err := s.Create(context.Background(), users.NewUser{Name: fmt.Sprint("W", i), Email: email})
		return err
	})
	exactlyOne(t, errs, users.ErrDuplicateEmail)
	page, err := s.List(context.Background(), users.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Users) != 1 {
		t.Fatalf("%d users stored, want 1", len(page.Users))
	}
}

func testConcurrentUpdateSameIfMatch(t *testing.T, s users.Store) {
	u := mustCreate(t, s, "Ann", "ann@example.com")
	errs := race(func(i int) error {
		name := fmt.Sprint("Writer ", i)
		var err error
		if i%2 == 0 {
			_, err = s.Replace(context.Background(), u.ID, users.NewUser{Name: name, Email: u.Email}, u.Rev)
		} else {
			_, err = s.Patch(context.Background(), u.ID, users.UserPatch{Name: &name}, u.Rev)
		}
		return err
	})
	exactlyOne(t, errs, users.ErrStaleRevision)
	got := mustGet(t, s, u.ID)
	if got.Rev == u.Rev || got.Name == u.Name {
		t.Errorf("after race: %+v, want the winner's write", got)
	}
	// The winner's name is the one stored.
	for i, err := range errs {
		if err == nil && got.Name != fmt.Sprint("Writer ", i) {
			t.Errorf("stored name %q, winner was worker %d", got.Name, i)
		}
	}
}

package storetest

import (
	"context"
	"sort"
	"testing"

	"github.com/inarious/inarious/internal/users"
)

// collect walks every page with the given limit and returns the IDs and page sizes.
func collect(t *testing.T, s users.Store, limit int) (ids []string, sizes []int) {
	t.Helper()
	cursor := ""
	for range 1000 { // guard against a store that never ends
		page, err := s.List(context.Background(), users.ListOptions{Limit: limit, Cursor: cursor})
		if err != nil {
			t.Fatalf("List(limit=%d, cursor=%q): %v", limit, cursor, err)
		}
		sizes = append(sizes, len(page.Users))
		for _, u := range page.Users {
			ids = append(ids, u.ID)
		}
		if page.NextCursor == "" {
			return ids, sizes
		}
		cursor = page.NextCursor
	}
	t.Fatal("List never returned an empty NextCursor")
	return nil, nil
}

func testPagination(t *testing.T, s users.Store) {
	const n = 23
	var want []string
	for i := range n {
		want = append(want, mustCreate(t, s, "User", emailN(i)).ID)
	}
	sort.Strings(want)

	ids, sizes := collect(t, s, 5)
	if got := sizes; len(got) != 5 || got[0] != 5 || got[3] != 5 || got[4] != 3 {
		t.Errorf("page sizes = %v, want [5 5 5 5 3]", got)
	}
	if !equal(ids, want) {
		t.Fatalf("paged ids = %v\nwant (sorted, each once) %v", ids, want)
	}
	again, _ := collect(t, s, 5)
	if !equal(again, ids) {
		t.Errorf("second walk differs: order is not stable")
	}

	// A limit equal to the count must not promise a next page.
	if _, sizes := collect(t, s, n); len(sizes) != 1 || sizes[0] != n {
		t.Errorf("limit=%d page sizes = %v, want [%d]", n, sizes, n)
	}
	// Zero limit means the default, which is larger than n.
	if _, sizes := collect(t, s, 0); len(sizes) != 1 || sizes[0] != n {
		t.Errorf("limit=0 page sizes = %v, want [%d]", sizes, n)
	}
	// Cursor at (and past) the last element gives an empty final page.
	for _, c := range []string{want[n-1], "ZZZZZZZZZZZZZZZZZZZZZZZZZZ"} {
		page, err := s.List(context.Background(), users.ListOptions{Limit: 5, Cursor: c})
		if err != nil || len(page.Users) != 0 || page.NextCursor != "" {
			t.Errorf("List(cursor=%q) = %d users, next %q, err %v; want empty last page", c, len(page.Users), page.NextCursor, err)
		}
	}

	// A deletion between pages neither duplicates nor skips the others.
	first, err := s.List(context.Background(), users.ListOptions{Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(context.Background(), want[5], ""); err != nil {
		t.Fatal(err)
	}
	rest, err := s.List(context.Background(), users.ListOptions{Limit: 100, Cursor: first.NextCursor})
	if err != nil {
		t.Fatal(err)
	}
	var restIDs []string
	for _, u := range rest.Users {
		restIDs = append(restIDs, u.ID)
	}
	if !equal(restIDs, want[6:]) {
		t.Errorf("after deleting the next page's first user: %v, want %v", restIDs, want[6:])
	}
}

func testPaginationEmpty(t *testing.T, s users.Store) {
	page, err := s.List(context.Background(), users.ListOptions{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Users) != 0 || page.NextCursor != "" {
		t.Fatalf("empty store page = %+v", page)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

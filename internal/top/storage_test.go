package top_test

import (
	"slices"
	"testing"

	"github.com/lovoo/goka/storage"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/tablestore"
	"github.com/inarious/inarious/internal/top"
)

func encoded(t *testing.T, client string, total uint64) []byte {
	t.Helper()
	b, err := new(codecs.ClientUsage).Encode(&activitypb.ClientUsage{Client: client, Total: total})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func clients(rows []top.Row) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.Client)
	}
	return out
}

// The wrapped storage keeps the index in step with goka's writes through a
// partition's life: seeded from what it holds at open, following Set and
// Delete, ranked when recovered, forgotten when closed (revoked).
func TestIndexingFollowsAPartitionsStorage(t *testing.T) {
	dir := t.TempDir()
	base := tablestore.Builder(dir, tablestore.DefaultOptions())
	open := func(b storage.Builder, topic string) storage.Storage {
		st, err := b(topic, 2)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Open(); err != nil {
			t.Fatal(err)
		}
		return st
	}
	// A previous run left two rows in local storage.
	st := open(base, "usage-table")
	_ = st.Set("a", encoded(t, "a", 5))
	_ = st.Set("b", encoded(t, "b", 9))
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	idx := top.New()
	build := top.Indexing("usage-table", idx)(base)
	st = open(build, "usage-table")
	if n, sum, ranked := idx.Partition(top.AllCalls, 2); !ranked || n != 2 || sum != 14 {
		t.Fatalf("after a warm open: %d clients, sum %d, ranked %v; want 2, 14, ranked", n, sum, ranked)
	}
	_ = st.Set("c", encoded(t, "c", 7))
	_ = st.Set("a", encoded(t, "a", 11))
	_ = st.Delete("b")
	_ = st.Set("junk", []byte{0xff, 0xff})
	if got := clients(idx.PageOf(top.AllCalls, []int32{2}, nil, 10)); !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("page %v, want [a c]", got)
	}
	if err := st.MarkRecovered(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if n, _, ranked := idx.Partition(top.AllCalls, 2); ranked || n != 0 || idx.Clients() != 0 {
		t.Errorf("after close: %d clients, ranked %v, index %d clients; want the partition forgotten", n, ranked, idx.Clients())
	}

	// Other topics pass through untouched.
	other := open(build, "usage-windows-1m")
	_ = other.Set("x", encoded(t, "x", 1))
	if idx.Clients() != 0 {
		t.Error("a write to another topic reached the index")
	}
	_ = other.Close()
}

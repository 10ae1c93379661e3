package tablestore_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/lovoo/goka/storage"

	"github.com/inarious/inarious/internal/tablestore"
)

func memory(string, int32) (storage.Storage, error) { return storage.NewMemory(), nil }

// A registry keeps the storages of the topics it tracks while they are
// open, and forgets them when goka closes them.
func TestRegistryKeepsOpenStoragesOfTrackedTopics(t *testing.T) {
	var r tablestore.Registry
	build := tablestore.Stack(memory, r.Layer(func(topic string) bool { return topic == "t" }))
	open := func(topic string, p int32) storage.Storage {
		st, err := build(topic, p)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Set("k", []byte(topic)); err != nil {
			t.Fatal(err)
		}
		return st
	}
	t0, t1, other := open("t", 0), open("t", 1), open("u", 0)
	if _, ok := other.(*tablestore.Tracked); ok {
		t.Error("an untracked topic's storage is wrapped")
	}
	var seen []int
	if err := r.ReadAll("t", func(st *tablestore.Tracked) error {
		v, _ := st.Get("k")
		seen = append(seen, len(v))
		return nil
	}); err != nil || len(seen) != 2 {
		t.Fatalf("ReadAll saw %d storages (%v), want 2", len(seen), err)
	}
	if ok, _ := r.Read("u", 0, func(*tablestore.Tracked) error { return nil }); ok {
		t.Error("Read found an untracked topic's storage")
	}
	if err := t1.Close(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := r.Read("t", 1, func(*tablestore.Tracked) error { return nil }); ok {
		t.Error("Read found a closed storage")
	}
	boom := errors.New("boom")
	if ok, err := r.Read("t", 0, func(*tablestore.Tracked) error { return boom }); !ok || !errors.Is(err, boom) {
		t.Errorf("Read = %v, %v; want true and fn's error", ok, err)
	}
	_ = t0.Close()
	_ = other.Close()
}

// Close waits for a read that holds the storage, which sees Closing.
func TestRegistryCloseWaitsForReads(t *testing.T) {
	var r tablestore.Registry
	st, err := r.Layer(func(string) bool { return true })(memory)("t", 0)
	if err != nil {
		t.Fatal(err)
	}
	reading, release := make(chan struct{}), make(chan struct{})
	readDone := make(chan bool)
	go func() {
		_, _ = r.Read("t", 0, func(tr *tablestore.Tracked) error {
			close(reading)
			<-release
			readDone <- tr.Closing()
			return nil
		})
	}()
	<-reading
	closed := make(chan struct{})
	go func() { _ = st.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned during a read")
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	if !<-readDone {
		t.Error("the read did not see Closing")
	}
	<-closed
	if ok, _ := r.Read("t", 0, func(*tablestore.Tracked) error { return nil }); ok {
		t.Error("Read found the closed storage")
	}
}

// Stack puts the first layer innermost and leaves nil layers out.
func TestStackOrdersLayers(t *testing.T) {
	var order []string
	layer := func(name string) tablestore.Layer {
		return func(b storage.Builder) storage.Builder {
			return func(topic string, p int32) (storage.Storage, error) {
				st, err := b(topic, p)
				order = append(order, name)
				return st, err
			}
		}
	}
	if _, err := tablestore.Stack(memory, layer("inner"), nil, layer("outer"))("t", 0); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(order, []string{"inner", "outer"}) {
		t.Errorf("layers built %v, want inner then outer", order)
	}
}

package confluent

// Tests that need a registry to answer in ways a real one cannot be made to
// on demand (down, then up; errors; counting requests) use franz-go's srfake,
// an in-memory registry behind httptest. registry_test.go runs the same
// paths against a real registry.

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
	"google.golang.org/protobuf/proto"
)

// flaky fails requests while down is set, as a registry that is away does.
type flaky struct {
	down     atomic.Bool
	requests atomic.Int64
}

func (f *flaky) RoundTrip(req *http.Request) (*http.Response, error) {
	f.requests.Add(1)
	if f.down.Load() {
		return nil, errors.New("dial tcp: connection refused")
	}
	return http.DefaultTransport.RoundTrip(req)
}

func fakeRegistry(t *testing.T) (*srfake.Registry, *flaky, *sr.Client) {
	t.Helper()
	reg := srfake.New(srfake.WithGlobalCompat(sr.CompatBackward))
	t.Cleanup(reg.Close)
	tr := new(flaky)
	cl, err := NewClient(reg.URL(), sr.HTTPClient(&http.Client{Transport: tr, Timeout: 5 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	return reg, tr, cl
}

func TestRegistrarRetriesUntilTheRegistryAnswers(t *testing.T) {
	reg, tr, cl := fakeRegistry(t)
	tr.down.Store(true)
	r := NewRegistrar(cl, Subject, WithBackoff(time.Millisecond, 5*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	for r.Status().Attempts < 3 {
		time.Sleep(time.Millisecond)
	}
	st := r.Status()
	if r.Ready() || r.Err() == nil || st.Ready || st.LastError == "" || st.FailedAt.IsZero() || r.Encoder() != nil {
		t.Fatalf("while down: Ready=%v Err=%v Status=%+v", r.Ready(), r.Err(), st)
	}
	if _, err := r.Codec().Encode(sample()); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("Codec.Encode while down: %v", err)
	}

	tr.down.Store(false)
	select {
	case <-r.Registered():
	case <-ctx.Done():
		t.Fatal("not registered after the registry came back")
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	st = r.Status()
	ss, ok := reg.GetSchema(Subject, 1)
	if !r.Ready() || r.Err() != nil || !st.Ready || st.LastError != "" || !ok || st.SchemaID != ss.ID || r.SchemaID() != ss.ID {
		t.Fatalf("after: Ready=%v Err=%v Status=%+v, registry has %+v (%v)", r.Ready(), r.Err(), st, ss.ID, ok)
	}
	raw, err := r.Codec().Encode(sample())
	if err != nil {
		t.Fatal(err)
	}
	ev, err := r.Codec().Decode(raw)
	if err != nil || !proto.Equal(ev.(proto.Message), sample()) {
		t.Fatalf("codec round trip: %v, %v", ev, err)
	}
	if err := r.Run(ctx); err != nil {
		t.Fatalf("Run again: %v", err)
	}
}

func TestRegistrarStopsWithItsContext(t *testing.T) {
	_, tr, cl := fakeRegistry(t)
	tr.down.Store(true)
	r := NewRegistrar(cl, Subject, WithBackoff(time.Millisecond, time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := r.Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want the context's error", err)
	}
	if r.Ready() || r.Err() == nil {
		t.Fatalf("Ready=%v Err=%v", r.Ready(), r.Err())
	}
}

// The decoder asks the registry about an id it does not know: whose subject
// it is and which message its index names; it remembers the answer.
func TestDecoderLooksUpUnknownIDs(t *testing.T) {
	reg, tr, cl := fakeRegistry(t)
	evolved := sr.Schema{Type: sr.TypeProtobuf, Schema: strings.Replace(Schema().Schema,
		"string client = 10;", "string client = 10;\n  string tenant = 11;", 1)}
	if evolved.Schema == Schema().Schema {
		t.Fatal("could not evolve the schema text")
	}
	reg.SeedSchema(Subject, 1, 7, Schema())
	reg.SeedSchema(Subject, 2, 8, evolved)
	reg.SeedSchema("Other-value", 1, 9, Schema())
	reg.SeedSchema("Users-key", 1, 10, sr.Schema{Type: sr.TypeProtobuf, Schema: `syntax = "proto3"; package x; message K {}`})

	d := NewDecoder(cl, Subject)
	frame := func(id int) []byte { return (&Encoder{id: id, index: MessageIndex()}).Frame(plain(t, sample())) }

	for _, id := range []int{7, 8} {
		ev, err := d.Decode(frame(id))
		if err != nil || !proto.Equal(ev, sample()) {
			t.Fatalf("id %d: %v, %v", id, ev, err)
		}
	}
	for _, id := range []int{9, 10, 99} {
		if _, err := d.Decode(frame(id)); !errors.Is(err, ErrUnknownSchema) {
			t.Fatalf("id %d: %v, want ErrUnknownSchema", id, err)
		}
	}

	// Verdicts are cached, rejections included: no request for these again.
	before := tr.requests.Load()
	for _, id := range []int{7, 8, 9, 10, 99} {
		_, _ = d.Decode(frame(id))
	}
	if n := tr.requests.Load() - before; n != 0 {
		t.Fatalf("%d registry requests for ids already looked up", n)
	}

	// Registry away: an unknown id is a transient error, not asked again
	// for a while, and decodes once the registry answers.
	reg.SeedSchema(Subject, 3, 11, evolved)
	tr.down.Store(true)
	if _, err := d.Decode(frame(11)); !errors.Is(err, ErrRegistryUnavailable) {
		t.Fatalf("registry down: %v, want ErrRegistryUnavailable", err)
	}
	before = tr.requests.Load()
	if _, err := d.Decode(frame(11)); !errors.Is(err, ErrRegistryUnavailable) || tr.requests.Load() != before {
		t.Fatalf("second try right away: %v, %d requests", err, tr.requests.Load()-before)
	}
	tr.down.Store(false)
	time.Sleep(lookupRetry)
	if _, err := d.Decode(frame(11)); err != nil {
		t.Fatalf("after the registry came back: %v", err)
	}

	// Server errors are transient too, unlike "not found".
	reg.Intercept(func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, `{"error_code":50001,"message":"store unavailable"}`, http.StatusInternalServerError)
		return true
	})
	if _, err := d.Decode(frame(12)); !errors.Is(err, ErrRegistryUnavailable) {
		t.Fatalf("500: %v, want ErrRegistryUnavailable", err)
	}
}

func TestDecoderCacheIsBounded(t *testing.T) {
	_, _, cl := fakeRegistry(t)
	d := NewDecoder(cl, Subject)
	d.Accept(1)
	enc := &Encoder{index: MessageIndex()}
	for id := 2; id < maxCached+50; id++ {
		enc.id = id
		_, _ = d.Decode(enc.Frame(nil))
	}
	d.mu.Lock()
	n, pinned := len(d.schemas), d.schemas[1] != nil
	d.mu.Unlock()
	if n > maxCached || !pinned {
		t.Fatalf("%d cached ids (max %d), accepted id kept: %v", n, maxCached, pinned)
	}
}

package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
	"google.golang.org/protobuf/proto"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/app"
	"github.com/inarious/inarious/internal/app/apptest"
	"github.com/inarious/inarious/internal/testutil"
)

// With --schema-registry the API registers Users-value, writes every event
// in the Confluent wire format, and the worker counts them exactly; a
// Confluent deserializer other than Inarious' own (franz-go's sr.Serde)
// reads the records. Runs when INARIOUS_SCHEMA_REGISTRY names a registry
// (scripts/registry.sh, started by scripts/test.sh).
func TestSchemaRegistryEndToEnd(t *testing.T) {
	url := os.Getenv("INARIOUS_SCHEMA_REGISTRY")
	if url == "" {
		t.Skip("INARIOUS_SCHEMA_REGISTRY not set: start one with scripts/registry.sh")
	}
	brokers, onBroker := ownBroker(t)
	s := &system{apptest.Start(t, nil, onBroker, func(c *app.Config) { c.SchemaRegistry = url })}

	var ready struct {
		Checks struct {
			SchemaRegistry struct {
				Ready    bool `json:"ready"`
				SchemaID int  `json:"schema_id"`
			} `json:"schema_registry"`
		} `json:"checks"`
	}
	resp, err := http.Get(s.Base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&ready)
	resp.Body.Close()
	if err != nil || !ready.Checks.SchemaRegistry.Ready || ready.Checks.SchemaRegistry.SchemaID <= 0 {
		t.Fatalf("/readyz schema_registry = %+v (%v), want ready with an id", ready.Checks.SchemaRegistry, err)
	}

	want := map[string]map[string]uint64{"10.3.0.1": {}, "10.3.0.2": {}}
	for client := range want {
		for range 5 {
			s.call(t, "GET", "/healthz", client, "")
		}
		want[client]["GET /healthz"] = 5
	}
	for client, endpoints := range want {
		testutil.Eventually(t, 30*time.Second, s.counts(t, client, endpoints))
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(string(codecs.ActivityTopic)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fetches := cl.PollFetches(ctx)
	if err := fetches.Err(); err != nil {
		t.Fatal(err)
	}
	records := fetches.Records()
	if len(records) == 0 {
		t.Fatal("no records in Users")
	}
	var serde sr.Serde
	serde.Register(ready.Checks.SchemaRegistry.SchemaID, &activitypb.BackendApiActivity{}, sr.Index(0),
		sr.DecodeFn(func(b []byte, v any) error { return proto.Unmarshal(b, v.(proto.Message)) }))
	for _, r := range records {
		var ev activitypb.BackendApiActivity
		if err := serde.Decode(r.Value, &ev); err != nil {
			t.Fatalf("record at %d/%d is not in the Confluent wire format of schema %d: %v (% x…)",
				r.Partition, r.Offset, ready.Checks.SchemaRegistry.SchemaID, err, r.Value[:min(8, len(r.Value))])
		}
		if ev.GetHttpMethod() == "" || string(r.Key) != codecs.ClientOf(&ev) {
			t.Errorf("record keyed %q decoded to %v", r.Key, &ev)
		}
	}
	t.Logf("%d records read back with sr.Serde, schema id %d", len(records), ready.Checks.SchemaRegistry.SchemaID)
}

// gatedRegistry is franz-go's in-memory registry behind a switch: while
// down it answers 503, as a registry that is starting or overloaded does.
type gatedRegistry struct {
	*httptest.Server
	down atomic.Bool
}

func newGatedRegistry(t *testing.T) *gatedRegistry {
	reg := srfake.New(srfake.WithGlobalCompat(sr.CompatBackward))
	t.Cleanup(reg.Close)
	target, err := url.Parse(reg.URL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	g := &gatedRegistry{}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.down.Load() {
			http.Error(w, "registry unavailable", http.StatusServiceUnavailable)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(g.Close)
	return g
}

// While the registry is away at start the API says so in /readyz, accepts
// requests and holds their events (nothing unframed reaches Users); once the
// registry answers, every held event is delivered, framed, and counted.
func TestSchemaRegistryAwayAtStart(t *testing.T) {
	reg := newGatedRegistry(t)
	reg.down.Store(true)
	_, onBroker := ownBroker(t)
	s := &system{apptest.StartListening(t, nil, onBroker, func(c *app.Config) { c.SchemaRegistry = reg.URL })}
	type readiness struct {
		Ready  bool `json:"ready"`
		Events struct {
			Delivered uint64 `json:"delivered"`
			Queued    int    `json:"queued"`
		} `json:"events"`
		Checks struct {
			SchemaRegistry struct {
				Ready     bool   `json:"ready"`
				LastError string `json:"last_error"`
			} `json:"schema_registry"`
		} `json:"checks"`
	}
	readyz := func() (int, readiness) {
		var rd readiness
		resp, err := http.Get(s.Base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&rd); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, rd
	}
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		code, rd := readyz()
		return code == http.StatusServiceUnavailable && rd.Checks.SchemaRegistry.LastError != "",
			fmt.Sprintf("/readyz %d %+v, want 503 naming the registry's error", code, rd)
	})
	const client, n = "10.3.1.1", 10
	for range n {
		if code := s.call(t, "GET", "/healthz", client, ""); code != http.StatusOK {
			t.Fatalf("GET /healthz = %d while the registry is away", code)
		}
	}
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		_, rd := readyz()
		return rd.Events.Queued >= n && rd.Events.Delivered == 0, fmt.Sprintf("events %+v, want %d held", rd.Events, n)
	})

	reg.down.Store(false)
	testutil.Eventually(t, 60*time.Second, func() (bool, string) {
		code, rd := readyz()
		return code == http.StatusOK, fmt.Sprintf("/readyz %d %+v after the registry came back", code, rd)
	})
	testutil.Eventually(t, 30*time.Second, s.counts(t, client, map[string]uint64{"GET /healthz": n}))
}

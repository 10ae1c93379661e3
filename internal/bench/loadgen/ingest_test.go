package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/otlpin"
)

// ingestServer is Inarious' real receivers over a publisher that keeps what
// it is given and shows each client's count in GET /usage/{client}.
type ingestServer struct {
	mu     sync.Mutex
	events []*activitypb.BackendApiActivity
	counts map[string]int
}

func (s *ingestServer) PublishAll(evs []*activitypb.BackendApiActivity) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, evs...)
	for _, ev := range evs {
		s.counts[codecs.ClientOf(ev)]++
	}
	return true
}

func (s *ingestServer) Healthy() bool { return true }

func newIngestServer(t *testing.T) (*ingestServer, *httptest.Server) {
	t.Helper()
	s := &ingestServer{counts: map[string]int{}}
	mux := http.NewServeMux()
	for _, r := range otlpin.Routes(s, otlpin.WithMaxBodyBytes(1<<20)) {
		mux.Handle(r.Method+" "+r.Path, r.Handler)
	}
	mux.HandleFunc("GET /usage/{client}", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		n := s.counts[r.PathValue("client")]
		s.mu.Unlock()
		if n == 0 {
			writeJSON(w, http.StatusNotFound, nil)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"total": n})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return s, srv
}

// The bodies the ingest scenarios send are taken whole by the real
// receivers, every item with an id of its own and the time it was sent.
func TestIngestScenariosSendBatchesTheReceiversTake(t *testing.T) {
	for _, c := range []struct {
		sc    Scenario
		batch int
		gzip  bool
	}{{OTLP, 0, false}, {OTLP, 0, true}, {Events, 0, false}, {Events, 7, true}} {
		name := string(c.sc)
		if c.gzip {
			name += "+gzip"
		}
		t.Run(name, func(t *testing.T) {
			s, srv := newIngestServer(t)
			cfg := Defaults()
			cfg.Target, cfg.Mix, cfg.Batch, cfg.Gzip = srv.URL, Mix{{c.sc, 1}}, c.batch, c.gzip
			cfg.Connections, cfg.Requests, cfg.ProbeEvery, cfg.Clients = 3, 9, 0, 1000
			started := time.Now().Add(-time.Second) // the event times are to the nanosecond
			rep, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			n := cfg.batchSize(c.sc)
			if rep.Requests != 9 || rep.Status.C2xx != 9 || rep.Items != int64(9*n) || rep.ItemThroughput <= 0 {
				t.Fatalf("report: %d requests, %d 2xx, %d items (%.0f/s), first error %q; want 9, 9, %d",
					rep.Requests, rep.Status.C2xx, rep.Items, rep.ItemThroughput, rep.FirstError, 9*n)
			}
			if len(s.events) != 9*n {
				t.Fatalf("the server took %d events, want %d", len(s.events), 9*n)
			}
			ids := map[string]bool{}
			for _, ev := range s.events {
				if ids[ev.RequestId] || ev.RequestId == "" {
					t.Fatalf("id %q twice or empty", ev.RequestId)
				}
				ids[ev.RequestId] = true
				client := codecs.ClientOf(ev)
				if !strings.HasPrefix(client, "198.18.") || ev.Service != LoadService || ev.HttpStatus != 200 ||
					!strings.HasPrefix(ev.Route, "/bench/") || codecs.EndpointKey(ev) != codecs.ServiceEndpointKey(LoadService, "GET "+ev.Route) ||
					ev.DurationUs != 1500 {
					t.Fatalf("event %v", ev)
				}
				if at := ev.RequestTime.AsTime(); at.Before(started) || at.After(time.Now()) {
					t.Fatalf("event time %v is not the time of the run (from %v)", at, started)
				}
			}
			if len(s.counts) < min(n*3, cfg.Clients) {
				t.Errorf("%d clients, want the batches spread over at least %d", len(s.counts), min(n*3, cfg.Clients))
			}
		})
	}
}

// A probe batch is all the probe's: its count grows by the batch, and
// freshness waits for all of it.
func TestIngestFreshnessWaitsForTheWholeBatch(t *testing.T) {
	for _, sc := range []Scenario{OTLP, Events} {
		s, srv := newIngestServer(t)
		cfg := Defaults()
		cfg.Target, cfg.Mix, cfg.Batch = srv.URL, Mix{{sc, 1}}, 5
		cfg.Connections, cfg.Requests, cfg.ProbeEvery, cfg.ProbeClients = 2, 20, 2, 3
		rep, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		f := rep.Freshness
		if f == nil || f.Probes == 0 || f.Seen.Count != f.Probes || f.TimedOut != 0 || f.Since != "send" {
			t.Fatalf("%s: freshness %+v", sc, f)
		}
		probed := 0
		for client, n := range s.counts {
			if strings.HasPrefix(client, "198.19.") {
				if n%5 != 0 {
					t.Errorf("%s: probe %s has %d items, not whole batches of 5", sc, client, n)
				}
				probed += n / 5
			}
		}
		if int64(probed) != f.Probes { // every probe batch was taken and looked for
			t.Errorf("%s: %d probe batches counted, %d probes", sc, probed, f.Probes)
		}
	}
}

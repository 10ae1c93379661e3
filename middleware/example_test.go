package middleware_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/middleware"
)

// inariousStandIn prints the events of each batch it is sent, as an
// Inarious server's POST /events would count them.
func inariousStandIn() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var batch []struct {
			ID         string `json:"id"`
			Client     string `json:"client"`
			Service    string `json:"service"`
			HTTPMethod string `json:"httpMethod"`
			Route      string `json:"route"`
			HTTPStatus int    `json:"httpStatus"`
		}
		if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, ev := range batch {
			fmt.Println(ev.Service, ev.Client, ev.HTTPMethod, ev.Route, ev.HTTPStatus, "id:", ev.ID != "")
		}
		fmt.Fprintf(w, `{"accepted":%d,"rejected":0,"errors":[]}`, len(batch))
	}))
}

func call(url string) {
	resp, err := http.Get(url)
	if err != nil {
		panic(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
}

// With Go's ServeMux, wrap the mux: the route is the pattern it matched,
// without its method.
func Example() {
	inarious := inariousStandIn()
	defer inarious.Close()

	m := middleware.New(middleware.NewHTTPTransport(inarious.URL+"/events"), middleware.WithService("shop"))
	routes := http.NewServeMux()
	routes.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "order", r.PathValue("id"))
	})
	api := httptest.NewServer(m.Wrap(routes))

	call(api.URL + "/orders/42")
	call(api.URL + "/no/such/page")

	api.Close()                       // the HTTP server stops first (Shutdown in a real service),
	_ = m.Close(context.Background()) // then the middleware delivers what it accepted
	// Output:
	// shop 127.0.0.1 GET /orders/{id} 200 id: true
	// shop 127.0.0.1 GET (unmatched) 404 id: true
}

// With gorilla/mux, the middleware goes in the router (Use), where the
// matched route is known. Here the client is named by a header.
func Example_gorillaMux() {
	inarious := inariousStandIn()
	defer inarious.Close()

	m := middleware.New(middleware.NewHTTPTransport(inarious.URL+"/events"), middleware.WithService("billing"),
		middleware.WithClient(func(r *http.Request) string { return r.Header.Get("X-Tenant") }))
	router := mux.NewRouter()
	router.Use(m.Wrap)
	router.HandleFunc("/invoices/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	})
	api := httptest.NewServer(router)

	req, _ := http.NewRequest(http.MethodGet, api.URL+"/invoices/7", nil)
	req.Header.Set("X-Tenant", "acme")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	_ = resp.Body.Close()

	api.Close()
	_ = m.Close(context.Background())
	// Output:
	// billing acme GET /invoices/{id} 202 id: true
}

// Straight to Kafka: records keyed by client on Inarious' activity topic,
// placed by murmur2 as Kafka's Java client places them. An in-process
// broker (kfake) stands in for Kafka here.
func ExampleNewKafkaTransport() {
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "Users"))
	if err != nil {
		panic(err)
	}
	defer broker.Close()

	kafka, err := middleware.NewKafkaTransport(broker.ListenAddrs())
	if err != nil {
		panic(err)
	}
	m := middleware.New(kafka, middleware.WithService("shop"),
		middleware.WithClient(func(r *http.Request) string { return r.Header.Get("X-Tenant") }))
	routes := http.NewServeMux()
	routes.HandleFunc("POST /carts/{id}/items", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
	})
	req := httptest.NewRequest(http.MethodPost, "/carts/9/items", nil)
	req.Header.Set("X-Tenant", "acme")
	m.Wrap(routes).ServeHTTP(httptest.NewRecorder(), req)
	_ = m.Close(context.Background())

	consumer, err := kgo.NewClient(kgo.SeedBrokers(broker.ListenAddrs()...), kgo.ConsumeTopics("Users"))
	if err != nil {
		panic(err)
	}
	defer consumer.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	consumer.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
		var ev activitypb.BackendApiActivity
		if err := proto.Unmarshal(r.Value, &ev); err != nil {
			panic(err)
		}
		fmt.Printf("key %s, partition %d: %s %s %s %d\n", r.Key, r.Partition, ev.Service, ev.HttpMethod, ev.Route, ev.HttpStatus)
	})
	// Output:
	// key acme, partition 0: shop POST /carts/{id}/items 201
}

// Over HTTP to an Inarious server: batches of events, each with an id of
// its own that a retried batch keeps, with the API key the server wants.
func ExampleNewHTTPTransport() {
	inarious := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var batch []map[string]any
		_ = json.NewDecoder(r.Body).Decode(&batch)
		fmt.Println(r.Method, r.URL.Path, "key:", r.Header.Get("X-API-Key"), "events:", len(batch))
		fmt.Fprintf(w, `{"accepted":%d,"rejected":0,"errors":[]}`, len(batch))
	}))
	defer inarious.Close()

	transport := middleware.NewHTTPTransport(inarious.URL+"/events",
		middleware.HTTPAPIKey("shop-key"),           // a key with the scope events:write
		middleware.HTTPBatch(100, 0),                // up to 100 events a batch
		middleware.HTTPLinger(200*time.Millisecond)) // or what came within 200 ms
	m := middleware.New(transport)
	h := m.Wrap(http.NotFoundHandler())
	for range 3 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	}
	_ = m.Close(context.Background())
	fmt.Printf("%+v\n", m.Stats())
	// Output:
	// POST /events key: shop-key events: 3
	// {Accepted:3 Delivered:3 Failed:0 Dropped:0 Retried:0 Rejected:0 Queued:0 InFlight:0}
}

// With quotas: the middleware asks Inarious for the client's limits
// (GET /quotas/{client}/check, here a stand-in allowing 2 calls an hour)
// and answers the calls past them with 429, as Inarious' own API does.
func Example_quotas() {
	inarious := http.NewServeMux()
	inarious.HandleFunc("GET /quotas/{client}/check", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"client":%q,"service":%q,"allowed":true,"policy":"*","limits":[{"window":"1h","limit":2,"service":"shop","remaining":2}]}`,
			r.PathValue("client"), r.URL.Query().Get("service"))
	})
	inarious.HandleFunc("POST /events", func(w http.ResponseWriter, r *http.Request) {
		var batch []map[string]any
		_ = json.NewDecoder(r.Body).Decode(&batch)
		fmt.Fprintf(w, `{"accepted":%d,"rejected":0,"errors":[]}`, len(batch))
	})
	server := httptest.NewServer(inarious)
	defer server.Close()

	m := middleware.New(middleware.NewHTTPTransport(server.URL+"/events"), middleware.WithService("shop"),
		middleware.WithClient(func(r *http.Request) string { return r.Header.Get("X-Tenant") }),
		middleware.WithQuotas(server.URL, middleware.QuotaAPIKey("shop-key"))) // a key with the scope quotas:check
	routes := http.NewServeMux()
	routes.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {})
	h := m.Wrap(routes)
	for range 3 {
		req := httptest.NewRequest(http.MethodGet, "/orders/42", nil)
		req.Header.Set("X-Tenant", "acme")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		remaining, _, _ := strings.Cut(rec.Header().Get("RateLimit"), ";t=")
		fmt.Println(rec.Code, rec.Header().Get("RateLimit-Policy"), remaining, "retry after:", rec.Header().Get("Retry-After") != "")
	}
	_ = m.Close(context.Background())
	fmt.Printf("%+v\n", m.QuotaStats())
	// Output:
	// 200 "1h shop";q=2;w=3600 "1h shop";r=1 retry after: false
	// 200 "1h shop";q=2;w=3600 "1h shop";r=0 retry after: false
	// 429 "1h shop";q=2;w=3600 "1h shop";r=0 retry after: true
	// {Allowed:2 Refused:1 Unavailable:0 CheckErrors:0}
}

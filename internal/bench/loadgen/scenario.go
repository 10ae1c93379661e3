package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// Identities live in 198.18.0.0/15, the range set aside for benchmarks
// (RFC 2544): load clients in 198.18.0.0/16, probes and the poller in
// 198.19.0.0/16, so they never mix with real traffic in the usage table.
var (
	loadBase  = netip.MustParseAddr("198.18.0.0")
	probeBase = netip.MustParseAddr("198.19.0.0")
)

// addrAt is base + n for n < 65536.
func addrAt(base netip.Addr, n int) string {
	b := base.As4()
	b[2] += byte(n >> 8)
	b[3] += byte(n)
	return netip.AddrFrom4(b).String()
}

// ClientIdentity is the X-Forwarded-For of load client i (0 ≤ i < MaxClients).
func ClientIdentity(i int) string { return addrAt(loadBase, i+1) }

// PollerIdentity is who the freshness polls are counted under.
var PollerIdentity = addrAt(probeBase, 1)

// probeIdentities are n probe identities from offset (kept in range).
func probeIdentities(n int, offset uint64) []string {
	const first, span = 2, 65534 - 2
	ids := make([]string, n)
	for i := range ids {
		ids[i] = addrAt(probeBase, first+int((offset%span+uint64(i))%span))
	}
	return ids
}

// bufPool holds buffers for reading response bodies.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// discard reads and drops a body, so the connection can be reused.
func discard(r io.Reader) {
	b := bufPool.Get().(*[]byte)
	for {
		if _, err := r.Read(*b); err != nil {
			break
		}
	}
	bufPool.Put(b)
}

// crudState is a worker's place in the users-crud cycle.
type crudState struct {
	step int // 0 create, 1 get, 2 patch, 3 delete
	id   string
	rev  string
}

// worker holds what one connection's requests need.
type worker struct {
	cfg    *Config
	client *http.Client
	runID  string
	n      int64 // requests made, for unique emails
	idx    int
	crud   crudState
	bodies map[Scenario]*batchBody // the ingest scenarios', made on first use
}

// ingest sends one batch of sc as identity as. Its items are spread over
// the load clients or, for a probe (probe not empty), all the probe's. It
// returns the status and how many items the server took.
func (w *worker) ingest(ctx context.Context, sc Scenario, as, probe string) (int, int64, error) {
	w.n++
	b := w.bodies[sc]
	if b == nil {
		n := w.cfg.batchSize(sc)
		var err error
		b, err = newBatchBody(sc, n, func(j int) string { return ClientIdentity((w.idx*n + j) % w.cfg.Clients) }, w.cfg.Gzip)
		if err != nil {
			return 0, 0, err
		}
		if w.bodies == nil {
			w.bodies = map[Scenario]*batchBody{}
		}
		w.bodies[sc] = b
	}
	var (
		body []byte
		err  error
	)
	if probe != "" {
		body, err = b.probeBody(probe, time.Now())
	} else {
		body, err = b.next(time.Now())
	}
	if err != nil {
		return 0, 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.Target+ingestPath(sc), bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("X-Forwarded-For", as)
	req.Header.Set("Content-Type", b.contentType())
	if w.cfg.Gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		discard(resp.Body)
		return resp.StatusCode, 0, nil
	}
	taken, err := acceptedItems(sc, resp.Body, b.n)
	if err != nil {
		return resp.StatusCode, 0, err
	}
	return resp.StatusCode, taken, nil
}

// acceptedItems reads how many of a batch of n the server took: all but
// the rejected spans of OTLP's partial success, or the events' "accepted".
func acceptedItems(sc Scenario, body io.Reader, n int) (int64, error) {
	b := bufPool.Get().(*[]byte)
	defer bufPool.Put(b)
	read := 0
	for read < len(*b) {
		k, err := body.Read((*b)[read:])
		read += k
		if err != nil {
			break
		}
	}
	discard(body)
	if sc == OTLP {
		resp := ptraceotlp.NewExportResponse()
		if err := resp.UnmarshalProto((*b)[:read]); err != nil {
			return 0, fmt.Errorf("otlp response: %w", err)
		}
		return int64(n) - resp.PartialSuccess().RejectedSpans(), nil
	}
	var res struct {
		Accepted int64 `json:"accepted"`
	}
	if err := json.Unmarshal((*b)[:read], &res); err != nil {
		return 0, fmt.Errorf("events response: %w", err)
	}
	return res.Accepted, nil
}

// userResp is what the users-crud cycle needs from a response.
type userResp struct {
	ID  string `json:"id"`
	Rev string `json:"rev"`
}

// do sends one request of scenario sc as identity as, for load client
// client, and returns its status (0 when it failed).
func (w *worker) do(ctx context.Context, sc Scenario, client int, as string) (int, error) {
	w.n++
	var (
		method, path, ctype, ifMatch string
		body                         []byte
		wantUser                     bool
	)
	switch sc {
	case UsageGet:
		method, path = http.MethodGet, "/usage/"+ClientIdentity(client)
	case UsageList:
		method, path = http.MethodGet, "/usage?limit=50"
	case EndpointGet:
		// Spread over the endpoints by a multiplicative hash of the count.
		i := int((uint64(w.n)*0x9E3779B97F4A7C15 + uint64(w.idx)) % uint64(max(w.cfg.Endpoints, 1)))
		method, path = http.MethodGet, "/endpoints/"+url.PathEscape("GET "+BenchRoute(i))
	case EndpointList:
		method, path = http.MethodGet, "/endpoints?order=p99&limit=50"
	case Healthz:
		method, path = http.MethodGet, "/healthz"
	case UsersCreate:
		method, path, ctype = http.MethodPost, "/users", "application/json"
		body = w.newUser()
	case UsersCRUD:
		switch w.crud.step {
		case 0:
			method, path, ctype = http.MethodPost, "/users", "application/json"
			body = w.newUser()
			wantUser = true
		case 1:
			method, path = http.MethodGet, "/users/"+w.crud.id
		case 2:
			method, path, ctype = http.MethodPatch, "/users/"+w.crud.id, "application/merge-patch+json"
			body = []byte(`{"name":"load patched"}`)
			ifMatch = strconv.Quote(w.crud.rev)
			wantUser = true
		case 3:
			method, path = http.MethodDelete, "/users/"+w.crud.id
			ifMatch = strconv.Quote(w.crud.rev)
		}
	default:
		return 0, fmt.Errorf("unknown scenario %q", sc)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, w.cfg.Target+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Forwarded-For", as)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		if sc == UsersCRUD {
			w.crud = crudState{}
		}
		return 0, err
	}
	ok := resp.StatusCode/100 == 2
	if wantUser && ok {
		var u userResp
		if json.NewDecoder(resp.Body).Decode(&u) == nil && u.ID != "" {
			w.crud.id, w.crud.rev = u.ID, u.Rev
		} else {
			ok = false
		}
	}
	discard(resp.Body)
	resp.Body.Close()
	if sc == UsersCRUD {
		// Any failure starts the cycle over with a new user.
		if ok {
			w.crud.step = (w.crud.step + 1) % 4
		} else {
			w.crud = crudState{}
		}
	}
	return resp.StatusCode, nil
}

// newUser is a create body with an email no other request of any run uses.
func (w *worker) newUser() []byte {
	return fmt.Appendf(nil, `{"name":"load %d","email":"load-%s-%d-%d@example.com"}`, w.n, w.runID, w.idx, w.n)
}

package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// ingestEndpoint is what the ingest producer's events count as.
const ingestEndpoint = "shop: GET /orders/{id}"

// ingestProducer posts batches of events of another service to POST
// /events the way a retrying exporter does, until halted: every batch is
// sent twice (a retry after a lost response), and the batch sent
// resendAfter batches earlier once more, so that copies reach the dedupe
// stage before and after whatever happens meanwhile (a worker killed).
// Each id counts once in tr's expectations, when its batch was first
// accepted. A batch refused (429/503) or without a response is sent again
// until accepted.
func (tr *traffic) ingestProducer(a *apiProc, interval time.Duration, clients []string) *load {
	const perBatch, resendAfter = 5, 30
	l := &load{stop: make(chan struct{}), done: make(chan struct{})}
	var sent [][]byte
	post := func(body []byte) error {
		for {
			code, resp, err := tr.call(a, http.MethodPost, "/events", "", string(body))
			if err == nil && code == http.StatusOK {
				var res struct{ Accepted int }
				if err := json.Unmarshal(resp, &res); err != nil || res.Accepted != perBatch {
					return fmt.Errorf("POST /events accepted %d of %d: %s", res.Accepted, perBatch, resp)
				}
				return nil
			}
			if err == nil && code != http.StatusTooManyRequests && code != http.StatusServiceUnavailable {
				return fmt.Errorf("POST /events: %d %s", code, resp)
			}
			select {
			case <-l.stop:
				return fmt.Errorf("halted while POST /events was refused (%d, %w)", code, err)
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for j := 0; ; j++ {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			items := make([]map[string]any, perBatch)
			for k := range items {
				items[k] = map[string]any{"id": fmt.Sprintf("b%d-%d", j, k), "client": clients[(j*perBatch+k)%len(clients)],
					"service": "shop", "httpMethod": "GET", "route": "/orders/{id}", "httpStatus": 200, "durationUs": 900}
			}
			body, _ := json.Marshal(items)
			if err := post(body); err != nil {
				l.errs.Add(1)
				l.firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			tr.mu.Lock()
			for _, it := range items {
				c := it["client"].(string)
				if tr.want[c] == nil {
					tr.want[c] = map[string]uint64{}
				}
				tr.want[c][ingestEndpoint]++
			}
			tr.mu.Unlock()
			l.sent.Add(perBatch)
			sent = append(sent, body)
			retries := [][]byte{body}
			if len(sent) > resendAfter {
				retries = append(retries, sent[len(sent)-1-resendAfter])
			}
			for _, b := range retries {
				if err := post(b); err != nil {
					l.errs.Add(1)
					l.firstErr.CompareAndSwap(nil, err.Error())
					return
				}
			}
		}
	}()
	return l
}

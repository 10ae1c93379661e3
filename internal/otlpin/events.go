package otlpin

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/problem"
)

// EventsPath takes batches of activity events as JSON.
const EventsPath = "/events"

// MaxBatchEvents bounds a batch's items; MaxBatchErrors the errors listed.
const (
	MaxBatchEvents = 1000
	MaxBatchErrors = 20
)

// BatchError says why the item at Index was rejected.
type BatchError struct {
	Index int    `json:"index"`
	Error string `json:"error"`
}

// BatchResult is the answer to a batch.
type BatchResult struct {
	Accepted int          `json:"accepted"`
	Rejected int          `json:"rejected"`
	Errors   []BatchError `json:"errors"`
}

// batchReceiver serves POST /events.
type batchReceiver struct{ *receiver }

func (b batchReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if cs, ok := params["charset"]; err != nil || mediaType != ContentTypeJSON || (ok && !strings.EqualFold(cs, "utf-8")) {
		problem.Write(w, r, http.StatusUnsupportedMediaType, "Content-Type must be "+ContentTypeJSON+" (charset utf-8)")
		return
	}
	body, status, detail := b.readBody(w, r)
	if status != 0 {
		problem.Write(w, r, status, detail)
		return
	}
	if !b.startWork(r) {
		return
	}
	defer b.endWork()
	evs, res, detail := ParseBatch(body, time.Now())
	runtime.Gosched() // as for spans (see startWork)
	if detail != "" {
		problem.Write(w, r, http.StatusBadRequest, detail)
		return
	}
	if len(evs) > 0 && !b.pub.PublishAll(evs) {
		status := http.StatusServiceUnavailable
		if b.pub.Healthy() {
			status = http.StatusTooManyRequests
		}
		b.log.Warn("event batch refused: the event queue has no room", "events", len(evs), "status", status)
		w.Header().Set("Retry-After", strconv.Itoa(int(RetryAfter/time.Second)))
		problem.Write(w, r, status, "the event queue has no room for this batch; send it again later")
		return
	}
	w.Header().Set("Content-Type", ContentTypeJSON)
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(res)
}

// ParseBatch reads a JSON array of events (protojson of BackendApiActivity
// plus "id"). Items that are no valid event are rejected and listed;
// detail is non-empty when the body as a whole is malformed (400). An
// event without request_time happened at now.
func ParseBatch(body []byte, now time.Time) (evs []*activitypb.BackendApiActivity, res BatchResult, detail string) {
	res.Errors = []BatchError{}
	if evs, ok := parseBatchFast(body, now); ok {
		res.Accepted = len(evs)
		return evs, res, ""
	}
	return parseBatchGeneral(body, now)
}

// parseBatchGeneral is ParseBatch for any body, with protojson.
func parseBatchGeneral(body []byte, now time.Time) (evs []*activitypb.BackendApiActivity, res BatchResult, detail string) {
	res.Errors = []BatchError{}
	var items []json.RawMessage
	if !json.Valid(body) || json.Unmarshal(body, &items) != nil || items == nil {
		return nil, res, "the body is not one JSON array of events"
	}
	if len(items) == 0 || len(items) > MaxBatchEvents {
		return nil, res, "a batch has 1 to " + strconv.Itoa(MaxBatchEvents) + " events, not " + strconv.Itoa(len(items))
	}
	for i, it := range items {
		if t := bytes.TrimLeft(it, " \t\r\n"); len(t) == 0 || t[0] != '{' {
			return nil, res, "item " + strconv.Itoa(i) + " is not a JSON object"
		}
	}
	for i, it := range items {
		ev, why := parseEvent(it)
		if why != "" {
			res.Rejected++
			if len(res.Errors) < MaxBatchErrors {
				res.Errors = append(res.Errors, BatchError{Index: i, Error: why})
			}
			continue
		}
		if ev.RequestTime == nil {
			ev.RequestTime = timestamppb.New(now)
		}
		evs = append(evs, ev)
	}
	res.Accepted = len(evs)
	return evs, res, ""
}

// parseEvent reads one item, or says why it is no event.
func parseEvent(item []byte) (*activitypb.BackendApiActivity, string) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(item, &fields); err != nil {
		return nil, "not a JSON object"
	}
	id := ""
	if raw, ok := fields["id"]; ok {
		if err := json.Unmarshal(raw, &id); err != nil {
			return nil, "id is not a string"
		}
		delete(fields, "id")
		item, _ = json.Marshal(fields)
	}
	ev := &activitypb.BackendApiActivity{}
	if err := protojson.Unmarshal(item, ev); err != nil {
		// Positions are in the item as re-encoded: only the reason helps.
		msg := strings.ReplaceAll(err.Error(), "\u00a0", " ")
		if _, after, ok := strings.Cut(msg, "): "); ok {
			msg = after
		}
		return nil, strings.TrimPrefix(msg, "proto: ")
	}
	if why := completeEvent(ev, id); why != "" {
		return nil, why
	}
	return ev, ""
}

// completeEvent says what ev lacks to be counted, or gives it id as its
// request id when it has none.
func completeEvent(ev *activitypb.BackendApiActivity, id string) string {
	switch {
	case ev.HttpMethod == "":
		return "without httpMethod"
	case !codecs.ValidMethod(ev.HttpMethod):
		return "httpMethod is not an HTTP method (a token of at most 32 bytes)"
	case ev.Client == "" && ev.ClientHost == "":
		return "without client (or clientHost)"
	case ev.Route == "" && ev.Endpoint == "":
		return "without route or endpoint"
	}
	if ev.RequestId == "" {
		ev.RequestId = id
	}
	return ""
}

package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/inarious/inarious/internal/otlpin/otlpintest"
	"github.com/inarious/inarious/internal/testutil"
	"github.com/inarious/inarious/internal/usagehttp"
	"github.com/inarious/inarious/processors/dedupe"
)

// otelService runs API and worker, the API counting spans under the
// attribute the service sets, and a service instrumented with the
// OpenTelemetry Go SDK exporting to it (through wrap, when given); it makes
// the service answer calls from k clients on each of its routes.
func otelService(t *testing.T, k int, wrap func(sdktrace.SpanExporter) sdktrace.SpanExporter) (*traffic, *apiProc, *otlpintest.Service) {
	t.Helper()
	needKafka(t)
	resetKafka(t)
	dir := t.TempDir()
	tr := newTraffic(t, 0)
	a := startAPI(t, filepath.Join(dir, "api"), "--otlp-client-attribute", otlpintest.ClientAttribute)
	tr.waitReady(a, 60*time.Second)
	startWorker(t, "worker-1", filepath.Join(dir, "w1"))
	svc := otlpintest.Start(t, a.base, "shop", wrap)
	for c := range k {
		for i := range 10 + c {
			for _, r := range otlpintest.Routes {
				svc.Call(t, fmt.Sprintf("otel-client-%d", c), r, strings.ReplaceAll(r.Pattern, "{id}", fmt.Sprint(1000+i)))
			}
		}
	}
	return tr, a, svc
}

// Scenario: a service instrumented with the OpenTelemetry Go SDK (otelhttp
// records its server spans, otlptracehttp exports them gzipped to
// POST /v1/traces) is counted exactly per client (the enduser.id it sets,
// --otlp-client-attribute) and endpoint (http.route from its ServeMux
// patterns, 404s included).
func TestOTelSDKService(t *testing.T) {
	tr, a, svc := otelService(t, 20, nil)
	start := time.Now()
	svc.Flush(t)
	flushed := time.Since(start)
	served := svc.Served()
	exact := tr.waitCountsOf(a, served, false, 60*time.Second)
	var spans uint64
	for _, eps := range served {
		for _, n := range eps {
			spans += n
		}
	}
	report(t, "spans=%d clients=%d flush=%s counts_exact_after_flush=%s", spans, len(served), ms(flushed), ms(exact))
	// The service's calls are its own: ?service= narrows a client to them,
	// and the default service (Inarious' own API) has none of them.
	for client, eps := range served {
		var want uint64
		for _, n := range eps {
			want += n
		}
		for service, n := range map[string]uint64{svc.Name: want, "default": 0} {
			code, body, err := tr.call(a, http.MethodGet, "/usage/"+client+"?service="+service, "", "")
			var u usagehttp.ClientUsage
			if err != nil || code != http.StatusOK || json.Unmarshal(body, &u) != nil || u.Total != n || len(u.Endpoints) != min(len(eps), int(n)) {
				t.Errorf("GET /usage/%s?service=%s: %d %s (%v), want total %d", client, service, code, body, err, n)
			}
		}
	}
}

// Scenario: every batch the SDK exports is sent twice, as after a lost
// response; each span is counted once.
func TestOTelSDKBatchSentTwiceCountedOnce(t *testing.T) {
	tr, a, svc := otelService(t, 5, otlpintest.Twice)
	svc.Flush(t)
	served := svc.Served()
	tr.waitCountsOf(a, served, false, 60*time.Second)
	// The second copies may be counted after the first: once every event
	// the API took is in Users and the group has read all of Users, the
	// counts are final.
	waitAllConsumed(t, tr, a)
	if diff, _, err := tr.countsDiff(a, served, false); err != nil || diff != "" {
		t.Fatalf("after every record was read: %s %v", diff, err)
	}
}

// waitAllConsumed waits until the API delivered every event it took, the
// dedupe stage committed the end of every partition of the ingest topic
// and the usage group the end of every partition of Users.
func waitAllConsumed(t *testing.T, tr *traffic, a *apiProc) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		_, rd, err := tr.readyz(a)
		return err == nil && rd.Events.Accepted == rd.Events.Delivered && rd.Events.Queued == 0,
			fmt.Sprintf("events %+v (%v)", rd.Events, err)
	})
	client, err := sarama.NewClient(brokers, saramaConfig())
	if err != nil {
		t.Fatalf("kafka client: %v", err)
	}
	defer client.Close()
	for _, gt := range [][2]string{{dedupe.Group, string(dedupe.IngestTopic)}, {usageGroup, usersTopic}} {
		testutil.Eventually(t, 30*time.Second, func() (bool, string) {
			done := committedOf(t, gt[0], gt[1])
			for p := range int32(partitions) {
				done[p] = max(done[p], 0) // -1: nothing committed, as in a partition never written
				end, err := client.GetOffset(gt[1], p, sarama.OffsetNewest)
				if err != nil {
					return false, fmt.Sprintf("%s/%d: %v", gt[1], p, err)
				}
				// Users ends with the commit marker of the dedupe stage's
				// last transaction (an offset no consumer commits past) or
				// with an event of the API's own, from this test's reads:
				// end-1 has every forwarded span.
				if gt[0] == dedupe.Group && done[p] < end || done[p] < end-1 {
					return false, fmt.Sprintf("%s/%d: %s committed %d, end %d", gt[1], p, gt[0], done[p], end)
				}
			}
			return true, ""
		})
	}
}

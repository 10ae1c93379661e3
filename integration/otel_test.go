package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/inarious/inarious/internal/otlpin/otlpintest"
	"github.com/inarious/inarious/internal/testutil"
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
	// Issue 24, per service: once the service is part of every key, read
	// the same counts with ?service=shop (svc.Name) and check that another
	// service's same routes are kept apart.
}

// Scenario: every batch the SDK exports is sent twice, as after a lost
// response; each span is counted once.
func TestOTelSDKBatchSentTwiceCountedOnce(t *testing.T) {
	t.Skip("issue 24: needs the dedupe stage (trace id + span id); remove this skip when it lands")
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

// waitAllConsumed waits until the API delivered every event it took and
// the usage group committed the end of every partition of Users.
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
	testutil.Eventually(t, 30*time.Second, func() (bool, string) {
		done := committed(t)
		for p := range int32(partitions) {
			end, err := client.GetOffset(usersTopic, p, sarama.OffsetNewest)
			if err != nil || done[p] < end {
				return false, fmt.Sprintf("Users/%d: committed %d, end %d (%v)", p, done[p], end, err)
			}
		}
		return true, ""
	})
}

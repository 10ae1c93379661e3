package otlpin_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/inarious/inarious/codecs/activitypb"
	"github.com/inarious/inarious/internal/bench/loadgen"
	"github.com/inarious/inarious/internal/otlpin"
)

// benchExport is the load tool's export of n spans (as otelhttp records
// them), over 250 clients.
func benchExport(b *testing.B, n int) []byte {
	b.Helper()
	body, err := loadgen.OTLPExport(n, func(j int) string { return fmt.Sprintf("203.0.113.%d", j%250) },
		func(j int) (pcommon.TraceID, pcommon.SpanID) {
			var tid pcommon.TraceID
			var sid pcommon.SpanID
			tid[0], tid[15], sid[0], sid[7] = byte(j), byte(j>>8), byte(j), byte(j>>8)
			return tid, sid
		}, func(int) time.Time { return t0 }).MarshalProto()
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkConvertOTLP is the receiver's work per export of 512 spans
// before publishing: decoding the protobuf body and converting its spans.
func BenchmarkConvertOTLP(b *testing.B) {
	body := benchExport(b, 512)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req := ptraceotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil {
			b.Fatal(err)
		}
		if res := otlpin.Convert(req.Traces(), ""); len(res.Events) != 512 {
			b.Fatalf("%d events", len(res.Events))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*512), "ns/span")
}

// discardPub takes every batch and keeps nothing.
type discardPub struct{}

func (discardPub) PublishAll([]*activitypb.BackendApiActivity) bool { return true }
func (discardPub) Healthy() bool                                    { return true }

// BenchmarkReceiveOTLP is the receiver's whole work per export of 512
// spans, plain and gzipped, the publisher taking the events for free.
func BenchmarkReceiveOTLP(b *testing.B) {
	raw := benchExport(b, 512)
	h := otlpin.Routes(discardPub{}, otlpin.WithMaxBodyBytes(1<<20))[0].Handler
	for _, c := range []struct {
		name, enc string
		body      []byte
	}{{"plain", "", raw}, {"gzip", "gzip", gzipped(b, raw)}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest(http.MethodPost, otlpin.Path, bytes.NewReader(c.body))
				r.Header.Set("Content-Type", otlpin.ContentTypeProtobuf)
				if c.enc != "" {
					r.Header.Set("Content-Encoding", c.enc)
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("%d: %s", w.Code, w.Body)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*512), "ns/span")
		})
	}
}

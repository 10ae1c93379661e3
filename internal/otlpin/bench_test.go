package otlpin_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

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

// BenchmarkConvertEvents is POST /events' work per batch of 100 events
// before publishing.
func BenchmarkConvertEvents(b *testing.B) {
	var sb strings.Builder
	sb.WriteByte('[')
	for j := range 100 {
		if j > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"id":"5b8efff798038103d269b633813f%04x","client":"198.18.0.%d","clientHost":"198.18.0.%d","service":"shop",`+
			`"httpMethod":"GET","route":"/orders/{id}","endpoint":"/orders/%d","httpStatus":200,"durationUs":"1500","requestTime":"2026-12-06T12:00:00.123456789Z"}`,
			j, j, j, j)
	}
	sb.WriteByte(']')
	body := []byte(sb.String())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		evs, _, detail := otlpin.ParseBatch(body, t0)
		if detail != "" || len(evs) != 100 {
			b.Fatalf("%d events: %s", len(evs), detail)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/event")
}

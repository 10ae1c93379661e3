package otlpin_test

import (
	"fmt"
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

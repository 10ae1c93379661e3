package otlpin

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/inarious/inarious/codecs/activitypb"
)

var fastNow = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

// fastSeeds are bodies the fast pass takes and bodies it must leave to the
// general path; the fuzzer mutates them.
var fastSeeds = []string{
	`[{"id":"e1","client":"alice","httpMethod":"GET","route":"/orders/{id}","endpoint":"/orders/7","httpStatus":200,"durationUs":"1500","requestTime":"2026-12-06T12:00:00.123456789Z","service":"shop"}]`,
	` [ {"client_host":"192.0.2.1","http_method":"POST","endpoint":"/a","http_status":"201","duration_us":-3,"request_id":"r","client_port":"9"} ,
	  {"clientHost":"192.0.2.2","httpMethod":"GET","route":"/b","requestTime":"2026-12-06T13:00:00+01:00","id":"x"} ] `,
	`[{"client":"a","httpMethod":"GET","route":"/a","client":"b"}]`,
	`[{"client":"a","httpMethod":"GET","route":"/a","clientHost":"h","client_host":"i"}]`,
	`[{"client":"a","httpMethod":"GET","route":"/a","colour":"red"}]`,
	`[{"client":"a","httpMethod":"GET","route":"/a","httpStatus":1e2}]`,
	`[{"client":"a","httpMethod":"GET","route":"/a","httpStatus":"0200"}]`,
	`[{"client":"a","httpMethod":"GET","route":"/a","httpStatus":2147483648}]`,
	`[{"client":"a","httpMethod":"GET","route":"/a","durationUs":" 5"}]`,
	`[{"client":"a","httpMethod":"GET","route":"/a","requestTime":"2026-12-06T12:00:00.1234567890Z"}]`,
	`[{"client":"a","httpMethod":"GET","route":"/a","requestTime":"0000-12-06T12:00:00Z"}]`,
	`[{"client":"a","httpMethod":"GET","route":"/a","requestTime":"2026-12-06t12:00:00z"}]`,
	`[{"client":"a\u00e9","httpMethod":"GET","route":"/a"}]`,
	`[{"client":"é","httpMethod":"GET","route":"/a"}]`,
	`[{"client":null,"clientHost":"h","httpMethod":"GET","route":"/a"}]`,
	`[{"client":"a","httpMethod":"GET"}]`,
	`[{"client":"a","httpMethod":"GET","route":"/a"}] x`,
	`[{"client":"a","httpMethod":"GET","route":"/a"},]`,
	`[{"id":7,"client":"a","httpMethod":"GET","route":"/a"}]`,
	`[]`, `{}`, `[1]`,
}

// checkFastAgreesWithGeneral fails if the fast pass takes body and reads
// it otherwise than the general path does.
func checkFastAgreesWithGeneral(t *testing.T, body []byte) bool {
	t.Helper()
	fast, ok := parseBatchFast(body, fastNow)
	if !ok {
		return false
	}
	general, res, detail := parseBatchGeneral(body, fastNow)
	if detail != "" || res.Rejected != 0 || res.Accepted != len(fast) || len(general) != len(fast) {
		t.Fatalf("fast pass took %q (%d events); the general path: %q, %+v", body, len(fast), detail, res)
	}
	for i := range fast {
		if !proto.Equal(fast[i], general[i]) {
			t.Fatalf("%q item %d: fast %v, general %v", body, i, fast[i], general[i])
		}
	}
	return true
}

func TestParseBatchFastAgreesWithTheGeneralPath(t *testing.T) {
	took := map[int]bool{}
	for i, s := range fastSeeds {
		took[i] = checkFastAgreesWithGeneral(t, []byte(s))
	}
	// The plain forms go the fast way; the others are left to the general path.
	for i, want := range map[int]bool{0: true, 1: true, 2: false, 3: false, 4: false, 5: false, 12: false, 14: false, 16: false} {
		if took[i] != want {
			t.Errorf("seed %d %s: fast pass took it %v, want %v", i, fastSeeds[i], took[i], want)
		}
	}
	// What ParseBatch answers is the same either way.
	evs, res, detail := ParseBatch([]byte(fastSeeds[0]), fastNow)
	if detail != "" || len(evs) != 1 || !reflect.DeepEqual(res, BatchResult{Accepted: 1, Errors: []BatchError{}}) {
		t.Errorf("ParseBatch: %v %+v %q", evs, res, detail)
	}
}

func FuzzParseBatchFast(f *testing.F) {
	for _, s := range fastSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkFastAgreesWithGeneral(t, body)
	})
}

// BenchmarkConvertEvents is POST /events' work per batch of 100 events, as
// the load tool sends them, before publishing: ParseBatch as served, and
// its general path alone, which was all of it before the fast pass.
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
	for _, c := range []struct {
		name  string
		parse func([]byte, time.Time) ([]*activitypb.BackendApiActivity, BatchResult, string)
	}{{"ParseBatch", ParseBatch}, {"general path (before)", parseBatchGeneral}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if evs, _, detail := c.parse(body, fastNow); detail != "" || len(evs) != 100 {
					b.Fatalf("%d events: %s", len(evs), detail)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/event")
		})
	}
}

package codecs_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
)

func sample() *activitypb.BackendApiActivity {
	return &activitypb.BackendApiActivity{
		ClientHost: "10.1.2.3", ClientPort: "51234", Endpoint: "/users/42", HttpMethod: "GET",
		HttpStatus: 200, DurationUs: 321, RequestTime: timestamppb.New(time.Unix(1700000000, 5)),
		Route: "/users/{id}", RequestId: "abc", Client: "10.1.2.3",
	}
}

func TestActivityRoundTrip(t *testing.T) {
	var c codecs.Activity
	b, err := c.Encode(sample())
	if err != nil {
		t.Fatal(err)
	}
	v, err := c.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(v.(*activitypb.BackendApiActivity), sample()) {
		t.Errorf("round trip changed the event: %v", v)
	}
}

// The first four fields must keep the numbers and types of the original
// schema, so consumers built against it still decode Inarious' events.
func TestActivityKeepsOriginalWireFormat(t *testing.T) {
	b, err := codecs.Activity{}.Encode(sample())
	if err != nil {
		t.Fatal(err)
	}
	want := map[protowire.Number]string{1: "10.1.2.3", 2: "51234", 3: "/users/42", 4: "GET"}
	got := map[protowire.Number]string{}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatal(protowire.ParseError(n))
		}
		b = b[n:]
		if _, original := want[num]; original {
			if typ != protowire.BytesType {
				t.Fatalf("field %d has wire type %d, want length-delimited string", num, typ)
			}
			s, m := protowire.ConsumeString(b)
			got[num] = s
			b = b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			t.Fatal(protowire.ParseError(m))
		}
		b = b[m:]
	}
	for num, s := range want {
		if got[num] != s {
			t.Errorf("field %d = %q, want %q", num, got[num], s)
		}
	}
}

func TestDecodeRejectsBadBytes(t *testing.T) {
	for _, b := range [][]byte{{0xff}, {0x0a, 0x05, 'a'}, {0x08}} {
		if _, err := (codecs.Activity{}).Decode(b); err == nil {
			t.Errorf("Decode(%x) gave no error", b)
		}
	}
}

func TestEncodeRejectsWrongType(t *testing.T) {
	if _, err := (codecs.Activity{}).Encode(&activitypb.ClientUsage{}); err == nil {
		t.Error("encoding a ClientUsage with the activity codec gave no error")
	}
	if _, err := (codecs.ClientUsage{}).Encode("text"); err == nil {
		t.Error("encoding a string gave no error")
	}
}

func FuzzActivityDecode(f *testing.F) {
	good, _ := codecs.Activity{}.Encode(sample())
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := codecs.Activity{}.Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes must encode again.
		if _, err := (codecs.Activity{}).Encode(v); err != nil {
			t.Fatalf("decoded value does not encode: %v", err)
		}
	})
}

func BenchmarkActivityEncode(b *testing.B) {
	ev := sample()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := (codecs.Activity{}).Encode(ev); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkActivityDecode(b *testing.B) {
	raw, _ := codecs.Activity{}.Encode(sample())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := (codecs.Activity{}).Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func sampleUsage() *activitypb.ClientUsage {
	u := &activitypb.ClientUsage{Client: "10.1.2.3", Total: 500, FirstSeen: timestamppb.Now(), LastSeen: timestamppb.Now(),
		Endpoints: map[string]*activitypb.EndpointUsage{}, AppliedOffsets: map[int32]int64{3: 123456}}
	for _, e := range []string{"GET /usage/{client}", "GET /users/{id}", "POST /users", "PATCH /users/{id}", "GET /healthz"} {
		u.Endpoints[e] = &activitypb.EndpointUsage{Count: 100, LastSeen: timestamppb.Now()}
	}
	return u
}

func BenchmarkClientUsageEncode(b *testing.B) {
	u := sampleUsage()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := (codecs.ClientUsage{}).Encode(u); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkClientUsageDecode(b *testing.B) {
	raw, _ := codecs.ClientUsage{}.Encode(sampleUsage())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := (codecs.ClientUsage{}).Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}

package confluent

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs/activitypb"
)

var _ goka.Codec = (*Codec)(nil)

func sample() *activitypb.BackendApiActivity {
	return &activitypb.BackendApiActivity{
		ClientHost: "10.1.2.3", ClientPort: "51234", Endpoint: "/users/42", HttpMethod: "GET",
		HttpStatus: 200, DurationUs: 321, RequestTime: timestamppb.New(time.Unix(1700000000, 5)),
		Route: "/users/{id}", RequestId: "abc", Client: "10.1.2.3",
	}
}

func plain(t testing.TB, ev *activitypb.BackendApiActivity) []byte {
	t.Helper()
	b, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSubjectIsTopicNameStrategyOfTheActivityTopic(t *testing.T) {
	if Subject != "Users-value" {
		t.Fatalf("Subject = %q, want Users-value", Subject)
	}
}

// The registered text is the committed file, byte for byte.
func TestSchemaIsTheCommittedProto(t *testing.T) {
	disk, err := os.ReadFile("../activitypb/activity.proto")
	if err != nil {
		t.Fatal(err)
	}
	s := Schema()
	if s.Schema != string(disk) || s.Type != sr.TypeProtobuf || len(s.References) != 0 {
		t.Fatalf("Schema() = type %v, %d references, text equal to activity.proto: %v", s.Type, len(s.References), s.Schema == string(disk))
	}
}

// The message index written in records must point at BackendApiActivity in
// the registered text, not just in the compiled descriptor.
func TestMessageIndexNamesTheEventInTheRegisteredText(t *testing.T) {
	idx := MessageIndex()
	if MessageName() != "inarious.activity.BackendApiActivity" {
		t.Fatalf("MessageName() = %q", MessageName())
	}
	f, err := scanProto(Schema().Schema)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.messageAt(idx); got != MessageName() {
		t.Fatalf("index %v names %q in activity.proto (messages %v), want %s", idx, got, f.messages, MessageName())
	}
	// Today it is the file's first message: the index is written as one 0 byte.
	if !slices.Equal(idx, []int{0}) {
		t.Logf("note: BackendApiActivity moved to index %v", idx)
	}
}

func TestEncoderFraming(t *testing.T) {
	enc, err := NewEncoder(0x01020304)
	if err != nil {
		t.Fatal(err)
	}
	got, err := enc.Encode(sample())
	if err != nil {
		t.Fatal(err)
	}
	// magic 0, id big endian, message indexes [0] as the single byte 0, payload.
	want := append([]byte{0, 1, 2, 3, 4, 0}, plain(t, sample())...)
	if !bytes.Equal(got, want) {
		t.Fatalf("Encode:\n got % x\nwant % x", got, want)
	}
	if framed := enc.Frame(plain(t, sample())); !bytes.Equal(framed, want) {
		t.Fatalf("Frame:\n got % x\nwant % x", framed, want)
	}
	prefix := []byte("keep")
	if app, _ := enc.AppendEncode(slices.Clone(prefix), sample()); !bytes.Equal(app, append(prefix, want...)) {
		t.Fatalf("AppendEncode: % x", app)
	}
	if enc.SchemaID() != 0x01020304 {
		t.Fatalf("SchemaID = %d", enc.SchemaID())
	}
	if _, err := enc.Encode(nil); err == nil {
		t.Fatal("Encode(nil): no error")
	}
	for _, id := range []int{0, -1, 1 << 31} {
		if _, err := NewEncoder(id); err == nil {
			t.Errorf("NewEncoder(%d): no error", id)
		}
	}
}

// A message index other than [0] is written as count + zig-zag varints, as
// Confluent does; checked by hand here since the encoder uses sr's header.
func TestFramingOfOtherIndexes(t *testing.T) {
	var h sr.ConfluentHeader
	b, _ := h.AppendEncode(nil, 7, []int{1, 2})
	want := []byte{0, 0, 0, 0, 7}
	want = binary.AppendVarint(want, 2)
	want = binary.AppendVarint(want, 1)
	want = binary.AppendVarint(want, 2)
	if !bytes.Equal(b, want) {
		t.Fatalf("got % x want % x", b, want)
	}
}

func TestDecoderPlainAndFramed(t *testing.T) {
	enc, _ := NewEncoder(42)
	framed, _ := enc.Encode(sample())
	d := NewDecoder(nil, Subject)
	d.Accept(42)

	for name, raw := range map[string][]byte{"plain": plain(t, sample()), "framed": framed} {
		ev, err := d.Decode(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !proto.Equal(ev, sample()) {
			t.Fatalf("%s: decoded %v", name, ev)
		}
	}
	// An empty record is a valid plain message with every field unset.
	if ev, err := d.Decode(nil); err != nil || !proto.Equal(ev, &activitypb.BackendApiActivity{}) {
		t.Fatalf("empty: %v, %v", ev, err)
	}
	// DecodeInto decodes the same, into a reused event that keeps nothing
	// of the record before.
	var into activitypb.BackendApiActivity
	for name, raw := range map[string][]byte{"plain": plain(t, sample()), "framed": framed, "empty": nil} {
		want := sample()
		if raw == nil {
			want = &activitypb.BackendApiActivity{}
		}
		if err := d.DecodeInto(context.Background(), raw, &into); err != nil || !proto.Equal(&into, want) {
			t.Fatalf("DecodeInto %s: %v, %v", name, &into, err)
		}
		if err := d.DecodeInto(context.Background(), raw, &into); err != nil || !proto.Equal(&into, want) {
			t.Fatalf("DecodeInto %s again: %v, %v", name, &into, err)
		}
	}
}

func TestDecoderRejects(t *testing.T) {
	d := NewDecoder(nil, Subject)
	d.Accept(42)
	payload := plain(t, sample())
	frame := func(id int, index []int, payload []byte) []byte {
		var h sr.ConfluentHeader
		b, _ := h.AppendEncode(nil, id, index)
		return append(b, payload...)
	}
	cases := []struct {
		name string
		raw  []byte
		want error
	}{
		{"unknown id, no registry", frame(43, []int{0}, payload), ErrUnknownSchema},
		{"index of another message", frame(42, []int{1}, payload), ErrUnknownSchema},
		{"nested index", frame(42, []int{0, 0}, payload), ErrUnknownSchema},
		{"index past the messages", frame(42, []int{9}, payload), ErrUnknownSchema},
		{"short header", []byte{0, 0, 0}, ErrMalformed},
		{"no index", []byte{0, 0, 0, 0, 42}, ErrMalformed},
		{"negative index count", []byte{0, 0, 0, 0, 42, 1}, ErrMalformed},
		{"too many indexes", append([]byte{0, 0, 0, 0, 42}, binary.AppendVarint(nil, 1000)...), ErrMalformed},
		{"bad payload", frame(42, []int{0}, []byte{0x0a, 0xff}), ErrMalformed},
		{"bad plain record", []byte{0x0a, 0xff}, ErrMalformed},
	}
	for _, c := range cases {
		ev, err := d.Decode(c.raw)
		if !errors.Is(err, c.want) || ev != nil {
			t.Errorf("%s: (%v, %v), want %v", c.name, ev, err, c.want)
		}
	}
}

func TestCodecHoldsUntilRegistered(t *testing.T) {
	r := NewRegistrar(nil, Subject)
	c := r.Codec()
	if _, err := c.Encode(sample()); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("Encode before registration: %v, want ErrNotRegistered", err)
	}
	if _, err := c.Encode("not an event"); err == nil {
		t.Fatal("Encode(string): no error")
	}
	if err := r.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "nil registry client") {
		t.Fatalf("Run without client: %v", err)
	}
	if r.Ready() || r.SchemaID() != 0 || r.Encoder() != nil {
		t.Fatalf("not registered, yet Ready=%v SchemaID=%d", r.Ready(), r.SchemaID())
	}
	if v, err := c.Decode(plain(t, sample())); err != nil || !proto.Equal(v.(*activitypb.BackendApiActivity), sample()) {
		t.Fatalf("Decode(plain): %v, %v", v, err)
	}
}

func TestScanProto(t *testing.T) {
	src := `syntax = "proto3";
// message Commented {}
/* message Block { } */
package a.b;
import "x.proto";
option go_package = "message Fake {";
message First { message Nested {} string message = 1; }
enum E { A = 0; }
service S { rpc M(First) returns (First); }
message Second{}
extend First { int32 x = 100; }
message   Third
{ option (o) = { a: "}" }; }
`
	f, err := scanProto(src)
	if err != nil {
		t.Fatal(err)
	}
	if f.pkg != "a.b" || !slices.Equal(f.messages, []string{"First", "Second", "Third"}) {
		t.Fatalf("got package %q, messages %v", f.pkg, f.messages)
	}
	if f.messageAt([]int{1}) != "a.b.Second" || f.messageAt([]int{3}) != "" || f.messageAt([]int{-1}) != "" {
		t.Fatal("messageAt")
	}
	for _, bad := range []string{"message A {", "}", `option x = "abc`, "/* open", "message A { } }"} {
		if _, err := scanProto(bad); err == nil {
			t.Errorf("scanProto(%q): no error", bad)
		}
	}
}

func FuzzDecode(f *testing.F) {
	enc, _ := NewEncoder(42)
	framed, _ := enc.Encode(sample())
	f.Add(framed)
	f.Add(plain(f, sample()))
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte{0, 0, 0, 0, 42, 2, 2, 4})
	f.Add([]byte{0, 0, 0, 0, 43, 0})
	f.Add(append([]byte{0, 0, 0, 0, 42}, binary.AppendVarint(nil, 1<<40)...))
	d := NewDecoder(nil, Subject)
	d.Accept(42)
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := d.Decode(raw)
		if (ev == nil) == (err == nil) {
			t.Fatalf("Decode = (%v, %v): want exactly one of event and error", ev, err)
		}
		if err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownSchema) {
			t.Fatalf("error %v is neither ErrMalformed nor ErrUnknownSchema", err)
		}
		if err == nil && len(raw) > 0 && raw[0] == 0 {
			// A framed record that decodes re-frames to a record that decodes
			// the same. (MarshalVT, like the UnmarshalVT the decoder uses,
			// does not insist on valid UTF-8 in strings; proto.Marshal does.)
			payload, err := ev.MarshalVT()
			if err != nil {
				t.Fatal(err)
			}
			again, err := d.Decode(enc.Frame(payload))
			if err != nil || !proto.Equal(again, ev) {
				t.Fatalf("re-framed: %v, %v", again, err)
			}
		}
	})
}

func FuzzScanProto(f *testing.F) {
	f.Add(activitypb.Proto)
	f.Add(`message A { message B {} } message C {}`)
	f.Add(`"\`)
	f.Fuzz(func(t *testing.T, src string) {
		pf, err := scanProto(src)
		if err == nil {
			for i := range pf.messages {
				_ = pf.messageAt([]int{i})
			}
		}
	})
}

package confluent

// Tests against a real Confluent-compatible registry, run when
// INARIOUS_SCHEMA_REGISTRY is its URL (for Apicurio Registry, the
// /apis/ccompat/v7 URL that scripts/registry.sh prints; scripts/test.sh starts
// one and sets it). They skip otherwise.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/proto"

	"github.com/inarious/inarious/codecs/activitypb"
)

const envRegistry = "INARIOUS_SCHEMA_REGISTRY"

func realRegistry(t *testing.T) (*sr.Client, context.Context) {
	t.Helper()
	url := os.Getenv(envRegistry)
	if url == "" {
		t.Skipf("%s not set: no schema registry to test against (scripts/registry.sh start)", envRegistry)
	}
	cl, err := NewClient(url)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	if _, err := cl.Subjects(ctx); err != nil {
		t.Fatalf("%s=%s does not answer as a Confluent-compatible registry (for Apicurio give the /apis/ccompat/v7 URL): %v", envRegistry, url, err)
	}
	return cl, ctx
}

// scratch is a subject of its own for one test run.
func scratch(t *testing.T, name string) string {
	return fmt.Sprintf("inarious-test-%s-%d-value", name, time.Now().UnixNano())
}

func TestRealRegistryRegister(t *testing.T) {
	cl, ctx := realRegistry(t)
	if c := cl.Compatibility(ctx); c[0].Err != nil || c[0].Level != sr.CompatBackward {
		t.Fatalf("global compatibility = %v (%v), want BACKWARD (scripts/registry.sh sets it)", c[0].Level, c[0].Err)
	}
	id, err := Register(ctx, cl, Subject)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Register(ctx, cl, Subject)
	if err != nil || again != id {
		t.Fatalf("second Register = %d, %v; first gave %d", again, err, id)
	}
	versions, err := cl.SchemaVersionsByID(ctx, id)
	if err != nil || !slices.ContainsFunc(versions, func(v sr.SubjectVersion) bool { return v.Subject == Subject }) {
		t.Fatalf("id %d is under %v (%v), want %s", id, versions, err, Subject)
	}
	s, err := cl.SchemaByID(ctx, id)
	if err != nil || s.Type != sr.TypeProtobuf || s.Schema != activitypb.Proto {
		t.Fatalf("schema %d: type %v, same text %v, err %v", id, s.Type, s.Schema == activitypb.Proto, err)
	}
	t.Logf("%s registered as schema id %d", Subject, id)
}

// A record framed by our encoder reads back with franz-go's sr.Serde, a
// Confluent-format deserializer that is not ours, configured from what the
// registry says (the message index comes from the registered text), and with
// our decoder, which has to look the id up itself.
func TestRealRegistryRoundTrip(t *testing.T) {
	cl, ctx := realRegistry(t)
	id, err := Register(ctx, cl, Subject)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := NewEncoder(id)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := enc.Encode(sample())
	if err != nil {
		t.Fatal(err)
	}

	registered, err := cl.SchemaByID(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	f, err := scanProto(registered.Schema)
	if err != nil {
		t.Fatal(err)
	}
	index := slices.Index(f.messages, "BackendApiActivity")
	var serde sr.Serde
	serde.Register(id, &activitypb.BackendApiActivity{}, sr.Index(index),
		sr.DecodeFn(func(b []byte, v any) error { return proto.Unmarshal(b, v.(proto.Message)) }))
	var viaSerde activitypb.BackendApiActivity
	if err := serde.Decode(raw, &viaSerde); err != nil {
		t.Fatalf("sr.Serde.Decode: %v", err)
	}
	if !proto.Equal(&viaSerde, sample()) {
		t.Fatalf("sr.Serde decoded %v", &viaSerde)
	}

	ours, err := NewDecoder(cl, Subject).Decode(raw)
	if err != nil || !proto.Equal(ours, sample()) {
		t.Fatalf("Decoder: %v, %v", ours, err)
	}
}

// retype changes the type of one of the original fields 1-4.
func retype(t *testing.T, from, to string) sr.Schema {
	t.Helper()
	s := Schema()
	changed := strings.Replace(s.Schema, from, to, 1)
	if changed == s.Schema {
		t.Fatalf("%q not in activity.proto", from)
	}
	s.Schema = changed
	return s
}

// The registry's BACKWARD rule guards the event's evolution: retyping one of
// the original fields is rejected, adding a field is not, and the committed
// .proto is compatible with the latest registered version.
func TestRealRegistryEvolution(t *testing.T) {
	cl, ctx := realRegistry(t)
	if _, err := Register(ctx, cl, Subject); err != nil {
		t.Fatal(err)
	}
	vctx := sr.WithParams(ctx, sr.Verbose)
	check := func(name string, s sr.Schema, want bool) {
		t.Helper()
		res, err := cl.CheckCompatibility(vctx, Subject, -1, s)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if res.Is != want {
			t.Errorf("%s: compatible = %v, want %v (%q)", name, res.Is, want, res.Messages)
		}
		t.Logf("%s: compatible = %v %q", name, res.Is, res.Messages)
	}
	check("committed activity.proto", Schema(), true)
	check("client_host string -> int64", retype(t, "string client_host = 1;", "int64 client_host = 1;"), false)
	check("http_method string -> int32", retype(t, "string http_method = 4;", "int32 http_method = 4;"), false)
	check("a new field", retype(t, "string client = 10;", "string client = 10;\n  string tenant = 1000;"), true) // a number no field uses

	// Registering the retyped schema is refused outright (on a subject of
	// its own, so Users-value keeps only real versions).
	sub := scratch(t, "evolution")
	if _, err := Register(ctx, cl, sub); err != nil {
		t.Fatal(err)
	}
	_, err := cl.RegisterSchema(ctx, sub, retype(t, "string client_host = 1;", "int64 client_host = 1;"), -1, -1)
	var re *sr.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusConflict {
		t.Fatalf("registering the retyped schema: %v, want 409 Conflict", err)
	}
	t.Logf("refused: %v", err)
}

// The decoder accepts ids of its subject, whatever the version, and refuses
// ids registered under another subject.
func TestRealRegistryDecoderChecksTheSubject(t *testing.T) {
	cl, ctx := realRegistry(t)
	sub := scratch(t, "decoder")
	v1, err := Register(ctx, cl, sub)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := cl.RegisterSchema(ctx, sub, retype(t, "string client = 10;", "string client = 10;\n  string tenant = 11;"), -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	other, err := cl.RegisterSchema(ctx, scratch(t, "other"), sr.Schema{Type: sr.TypeProtobuf,
		Schema: "syntax = \"proto3\";\npackage other;\nmessage BackendApiActivity { string x = 1; }\n"}, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDecoder(cl, sub)
	frame := func(id int) []byte { enc, _ := NewEncoder(id); b, _ := enc.Encode(sample()); return b }
	for _, id := range []int{v1, v2} {
		if ev, err := d.Decode(frame(id)); err != nil || !proto.Equal(ev, sample()) {
			t.Errorf("id %d of %s: %v, %v", id, sub, ev, err)
		}
	}
	if _, err := d.Decode(frame(other)); !errors.Is(err, ErrUnknownSchema) {
		t.Errorf("id %d of another subject: %v, want ErrUnknownSchema", other, err)
	} else {
		t.Logf("refused: %v", err)
	}
	if _, err := d.Decode(frame(1 << 30)); !errors.Is(err, ErrUnknownSchema) {
		t.Errorf("id not in the registry: %v, want ErrUnknownSchema", err)
	}
}

// The registrar against the real registry: ready, the id Register gives.
func TestRealRegistryRegistrar(t *testing.T) {
	cl, ctx := realRegistry(t)
	r := NewRegistrar(cl, Subject)
	if err := r.Run(ctx); err != nil {
		t.Fatal(err)
	}
	id, err := Register(ctx, cl, Subject)
	if err != nil || !r.Ready() || r.SchemaID() != id {
		t.Fatalf("Ready=%v SchemaID=%d, Register=%d (%v)", r.Ready(), r.SchemaID(), id, err)
	}
}

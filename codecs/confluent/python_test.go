package confluent

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/inarious/inarious/codecs/activitypb"
)

// Optional: Confluent's own Python deserializer (confluent-kafka[protobuf])
// reads a record we framed with the id the registry gave. Runs when
// INARIOUS_SCHEMA_REGISTRY is set and python3 can import confluent_kafka
// (e.g. PYTHONPATH pointing at `pip install --target DIR
// 'confluent-kafka[protobuf]'`); skips otherwise. Why it does not also write:
// testdata/confluent_interop.py.
func TestConfluentPythonInterop(t *testing.T) {
	cl, ctx := realRegistry(t)
	if err := exec.Command("python3", "-c", "import confluent_kafka.schema_registry.protobuf").Run(); err != nil {
		t.Skipf("python3 cannot import confluent_kafka.schema_registry.protobuf (pip install 'confluent-kafka[protobuf]'): %v", err)
	}
	id, err := Register(ctx, cl, Subject)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := NewEncoder(id)
	framed, err := enc.Encode(sample())
	if err != nil {
		t.Fatal(err)
	}
	set := &descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{
		protodesc.ToFileDescriptorProto(timestamppb.File_google_protobuf_timestamp_proto),
		protodesc.ToFileDescriptorProto(activitypb.File_activity_proto),
	}}
	raw, err := proto.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	fds := filepath.Join(t.TempDir(), "activity.fds")
	if err := os.WriteFile(fds, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "python3", "testdata/confluent_interop.py", fds, hex.EncodeToString(framed))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("confluent_interop.py: %v", err)
	}
	var got struct {
		ClientHost         string `json:"client_host"`
		Route              string `json:"route"`
		HTTPStatus         int32  `json:"http_status"`
		RequestTimeSeconds int64  `json:"request_time_seconds"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	s := sample()
	if got.ClientHost != s.ClientHost || got.Route != s.Route || got.HTTPStatus != s.HttpStatus || got.RequestTimeSeconds != s.RequestTime.GetSeconds() {
		t.Fatalf("Python read %+v from our record, want the fields of %v", got, s)
	}
	t.Logf("confluent-kafka's ProtobufDeserializer read %s", out)
}

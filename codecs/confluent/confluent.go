// Package confluent writes and reads the activity event (BackendApiActivity on
// topic Users) in the Confluent Schema Registry wire format, and registers its
// schema, the committed codecs/activitypb/activity.proto, in a
// Confluent-compatible registry (Confluent Schema Registry, Apicurio Registry's
// /apis/ccompat/v7, ...).
//
// A framed record is
//
//	0x00 | schema id (4 bytes, big endian) | message indexes | protobuf bytes
//
// where the message indexes locate BackendApiActivity in the .proto: for the
// first message of the file, the index list [0] is written as a single zero
// byte, as Confluent's serializers do. The registry client and the framing are
// github.com/twmb/franz-go/pkg/sr (sr.Client, sr.Serde, sr.ConfluentHeader).
//
// The parts:
//
//   - [Register] registers the schema under a subject ([Subject], "Users-value"
//     by the TopicNameStrategy) and returns its id.
//   - [Registrar] does that in the background for the API, retrying with
//     backoff while the registry is away, and reports its state for /readyz.
//   - [Encoder] frames events with a known schema id; [Registrar.Codec] is a
//     goka codec for the emitter that refuses to encode (and so never writes an
//     unframed record) until the id is known.
//   - [Decoder] reads both plain protobuf records (written without a registry)
//     and framed ones, accepting only schema ids that are versions of the
//     subject whose indexes name BackendApiActivity.
package confluent

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/sr"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/inarious/inarious/codecs"
	"github.com/inarious/inarious/codecs/activitypb"
)

// Subject is the subject of the activity topic's values under Confluent's
// default TopicNameStrategy: "<topic>-value", i.e. "Users-value".
const Subject = string(codecs.ActivityTopic) + "-value"

var (
	// ErrNotRegistered: there is no schema id to frame with yet (the
	// registrar has not registered the schema). The event was not encoded.
	ErrNotRegistered = errors.New("confluent: schema not registered yet")

	// ErrMalformed: the record is neither a valid plain protobuf event nor a
	// valid framed one (bad header, bad message indexes, undecodable payload).
	// Permanent: retrying the same bytes cannot succeed.
	ErrMalformed = errors.New("confluent: malformed record")

	// ErrUnknownSchema: the record is framed with a schema id that is not a
	// version of the decoder's subject, or whose message indexes do not name
	// BackendApiActivity. Permanent for that record.
	ErrUnknownSchema = errors.New("confluent: unknown schema")

	// ErrRegistryUnavailable: the record's schema id is not known yet and the
	// registry could not be asked (down, timed out, answered with an error
	// other than "not found"). Transient: the same record may decode later.
	ErrRegistryUnavailable = errors.New("confluent: schema registry unavailable")
)

// messageDescriptor is BackendApiActivity's descriptor, compiled from the same
// activity.proto that Schema returns.
func messageDescriptor() protoreflect.MessageDescriptor {
	return (*activitypb.BackendApiActivity)(nil).ProtoReflect().Descriptor()
}

// MessageName is the fully qualified protobuf name of the event,
// "inarious.activity.BackendApiActivity".
func MessageName() string { return string(messageDescriptor().FullName()) }

// MessageIndex is the Confluent message-index path of BackendApiActivity in
// activity.proto: its position among the file's top-level messages, then
// among the nested messages of each enclosing message. It is [0] while
// BackendApiActivity is the file's first message, which the wire format
// writes as the single byte 0.
func MessageIndex() []int {
	var path []int
	var d protoreflect.Descriptor = messageDescriptor()
	for {
		m, ok := d.(protoreflect.MessageDescriptor)
		if !ok {
			break
		}
		path = append([]int{m.Index()}, path...)
		d = m.Parent()
	}
	return path
}

// Schema is the committed activity.proto as a registry schema.
//
// It has no references: its only import, google/protobuf/timestamp.proto, is a
// well-known type that Confluent Schema Registry and Apicurio Registry both
// resolve built in, and Confluent's own protobuf serializers skip well-known
// types when they register references (skip.known.types). The test against a
// real registry registers it this way.
func Schema() sr.Schema {
	return sr.Schema{Schema: activitypb.Proto, Type: sr.TypeProtobuf}
}

// Register registers [Schema] under subject and returns its schema id. It is
// idempotent: registering the same schema again returns the same id and adds
// no version. The registry's compatibility rule (BACKWARD by default) rejects
// a schema that would break readers of the subject's latest version; the
// error then is an *sr.ResponseError with status 409.
func Register(ctx context.Context, client *sr.Client, subject string) (schemaID int, err error) {
	if client == nil {
		return 0, errors.New("confluent: Register: nil registry client")
	}
	if subject == "" {
		return 0, errors.New("confluent: Register: empty subject")
	}
	id, err := client.RegisterSchema(ctx, subject, Schema(), -1, -1)
	if err != nil {
		return 0, fmt.Errorf("confluent: register %s under %q: %w", MessageName(), subject, err)
	}
	if id <= 0 {
		return 0, fmt.Errorf("confluent: register %s under %q: registry returned schema id %d", MessageName(), subject, id)
	}
	return id, nil
}

// NewClient is sr.NewClient for one Confluent-compatible registry URL: for
// Apicurio Registry its /apis/ccompat/v7 path, e.g.
// "http://127.0.0.1:18081/apis/ccompat/v7" (scripts/registry.sh) or
// "http://registry:8080/apis/ccompat/v7" (docker compose); for Confluent
// Schema Registry its root, e.g. "http://schema-registry:8081". Later opts
// win (sr.HTTPClient for a timeout other than sr's 5 s, sr.BasicAuth, ...).
func NewClient(url string, opts ...sr.ClientOpt) (*sr.Client, error) {
	if url == "" {
		return nil, errors.New("confluent: empty schema registry URL")
	}
	return sr.NewClient(append([]sr.ClientOpt{sr.URLs(url), sr.UserAgent("inarious")}, opts...)...)
}

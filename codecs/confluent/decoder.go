package confluent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/inarious/inarious/codecs/activitypb"
)

const (
	// LookupTimeout bounds one registry look-up of an unknown schema id by
	// Decode (DecodeContext's context can bound it further).
	LookupTimeout = 5 * time.Second
	// lookupRetry is how long a failed look-up is not repeated: records with
	// that id fail fast with ErrRegistryUnavailable meanwhile, instead of
	// each waiting for the registry.
	lookupRetry = time.Second
	// maxCached bounds the schema ids a decoder remembers.
	maxCached = 256
	// maxIndexDepth bounds the message indexes read from a record.
	maxIndexDepth = 8
)

// Decoder reads activity events written as plain protobuf (first byte not 0:
// a protobuf message never starts with byte 0, field number 0 being invalid)
// or in the Confluent wire format. Of framed records it accepts only schema
// ids it knows to be versions of its subject whose message indexes name
// BackendApiActivity: ids given to Accept, and ids it looked up in the
// registry (their subjects, then their schema text), remembering the verdict.
// A Decoder is safe for concurrent use.
type Decoder struct {
	client  *sr.Client
	subject string

	mu      sync.Mutex
	schemas map[int]*verdict
}

// verdict is what a decoder knows of one schema id.
type verdict struct {
	file      protoFile // when accepted
	err       error     // permanent rejection (wraps ErrUnknownSchema)
	transient error     // last look-up failed (wraps ErrRegistryUnavailable) ...
	retryAt   time.Time // ... and is not repeated before then
	pinned    bool      // given to Accept: never evicted
}

// committed is the scan of the embedded activity.proto.
var committed = sync.OnceValue(func() protoFile {
	f, err := scanProto(activitypb.Proto)
	if err != nil {
		panic("confluent: cannot scan the embedded activity.proto: " + err.Error())
	}
	return f
})

// NewDecoder returns a decoder for records of subject (normally [Subject]).
// client may be nil: then only plain records and ids given to Accept decode.
func NewDecoder(client *sr.Client, subject string) *Decoder {
	return &Decoder{client: client, subject: subject, schemas: map[int]*verdict{}}
}

// Accept makes the decoder take schema id as the committed activity.proto
// (the id Register returned for it) without asking the registry.
func (d *Decoder) Accept(schemaID int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.schemas[schemaID] = &verdict{file: committed(), pinned: true}
}

// Decode decodes a record; see DecodeContext.
func (d *Decoder) Decode(raw []byte) (*activitypb.BackendApiActivity, error) {
	return d.DecodeContext(context.Background(), raw)
}

// DecodeContext decodes a plain or framed record. Errors wrap
// [ErrMalformed] or [ErrUnknownSchema] (permanent: the record can be
// dead-lettered) or [ErrRegistryUnavailable] (transient: an unknown schema id
// could not be looked up). A look-up takes at most [LookupTimeout], or less
// when ctx ends first.
func (d *Decoder) DecodeContext(ctx context.Context, raw []byte) (*activitypb.BackendApiActivity, error) {
	ev := new(activitypb.BackendApiActivity)
	if err := d.decode(ctx, raw, ev.UnmarshalVT); err != nil {
		return nil, err
	}
	return ev, nil
}

// DecodeInto is DecodeContext into ev, which it resets first, without
// copying: ev's strings point into raw and are valid only while raw is
// (clone what outlives it). For a reader that looks fields up and drops
// the event, as the endpoints aggregator does, it saves an allocation per
// string field.
func (d *Decoder) DecodeInto(ctx context.Context, raw []byte, ev *activitypb.BackendApiActivity) error {
	ev.Reset()
	return d.decode(ctx, raw, ev.UnmarshalVTUnsafe)
}

func (d *Decoder) decode(ctx context.Context, raw []byte, unmarshal func([]byte) error) error {
	if len(raw) == 0 || raw[0] != 0 {
		if err := unmarshal(raw); err != nil {
			return fmt.Errorf("%w: plain protobuf: %v", ErrMalformed, err)
		}
		return nil
	}
	var h sr.ConfluentHeader
	id, rest, err := h.DecodeID(raw)
	if err != nil {
		return fmt.Errorf("%w: %d bytes starting with the magic byte 0: %v", ErrMalformed, len(raw), err)
	}
	index, payload, err := h.DecodeIndex(rest, maxIndexDepth)
	if err != nil {
		return fmt.Errorf("%w: schema id %d: message indexes: %v", ErrMalformed, id, err)
	}
	file, err := d.schema(ctx, id)
	if err != nil {
		return err
	}
	if name := file.messageAt(index); name != MessageName() {
		if name == "" {
			name = "no top-level message"
		}
		return fmt.Errorf("%w: schema id %d: message index %v names %s, not %s", ErrUnknownSchema, id, index, name, MessageName())
	}
	if err := unmarshal(payload); err != nil {
		return fmt.Errorf("%w: schema id %d: payload: %v", ErrMalformed, id, err)
	}
	return nil
}

// schema returns what is known of id, looking it up when needed.
func (d *Decoder) schema(ctx context.Context, id int) (protoFile, error) {
	d.mu.Lock()
	v := d.schemas[id]
	d.mu.Unlock()
	switch {
	case v == nil:
	case v.err != nil:
		return protoFile{}, v.err
	case v.transient == nil:
		return v.file, nil
	case time.Now().Before(v.retryAt):
		return protoFile{}, v.transient
	}

	if d.client == nil {
		v = &verdict{err: fmt.Errorf("%w: schema id %d is not the registered one and there is no registry to ask", ErrUnknownSchema, id)}
	} else {
		ctx, cancel := context.WithTimeout(ctx, LookupTimeout)
		v = d.lookup(ctx, id)
		cancel()
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	if old := d.schemas[id]; old != nil && old.pinned {
		return old.file, nil // Accepted meanwhile
	}
	if _, ok := d.schemas[id]; !ok && len(d.schemas) >= maxCached {
		for k, old := range d.schemas {
			if !old.pinned {
				delete(d.schemas, k)
				break
			}
		}
	}
	d.schemas[id] = v
	switch {
	case v.err != nil:
		return protoFile{}, v.err
	case v.transient != nil:
		return protoFile{}, v.transient
	}
	return v.file, nil
}

// lookup asks the registry whether id is a version of the subject and which
// messages its schema declares.
func (d *Decoder) lookup(ctx context.Context, id int) *verdict {
	failed := func(what string, err error) *verdict {
		var re *sr.ResponseError
		if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
			return &verdict{err: fmt.Errorf("%w: schema id %d is not in the registry: %v", ErrUnknownSchema, id, err)}
		}
		return &verdict{
			transient: fmt.Errorf("%w: schema id %d: %s: %v", ErrRegistryUnavailable, id, what, err),
			retryAt:   time.Now().Add(lookupRetry),
		}
	}
	subjects, err := d.client.SubjectsByID(ctx, id)
	if err != nil {
		return failed("subjects", err)
	}
	if !slices.Contains(subjects, d.subject) {
		return &verdict{err: fmt.Errorf("%w: schema id %d is registered under %q, not %q", ErrUnknownSchema, id, subjects, d.subject)}
	}
	s, err := d.client.SchemaByID(ctx, id)
	if err != nil {
		return failed("schema", err)
	}
	if s.Type != sr.TypeProtobuf {
		return &verdict{err: fmt.Errorf("%w: schema id %d is a %s schema, not protobuf", ErrUnknownSchema, id, s.Type)}
	}
	file, err := scanProto(s.Schema)
	if err != nil {
		return &verdict{err: fmt.Errorf("%w: schema id %d: cannot read its .proto: %v", ErrUnknownSchema, id, err)}
	}
	return &verdict{file: file}
}

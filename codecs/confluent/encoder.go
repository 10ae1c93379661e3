package confluent

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/inarious/inarious/codecs/activitypb"
)

// Encoder frames activity events with one schema id. It is safe for
// concurrent use.
type Encoder struct {
	id    int
	index []int
	serde *sr.Serde
}

// NewEncoder returns an encoder for a schema id that [Register] returned.
func NewEncoder(schemaID int) (*Encoder, error) {
	if schemaID <= 0 || schemaID > math.MaxInt32 {
		return nil, fmt.Errorf("confluent: schema id %d out of range", schemaID)
	}
	e := &Encoder{id: schemaID, index: MessageIndex(), serde: sr.NewSerde()}
	e.serde.Register(schemaID, (*activitypb.BackendApiActivity)(nil),
		sr.Index(e.index...),
		sr.AppendEncodeFn(appendMarshal),
	)
	return e, nil
}

// appendMarshal appends the protobuf encoding of a *BackendApiActivity to b
// (vtprotobuf's reflection-free marshalling, no intermediate slice).
func appendMarshal(b []byte, v any) ([]byte, error) {
	ev, ok := v.(*activitypb.BackendApiActivity)
	if !ok || ev == nil {
		return b, fmt.Errorf("confluent: cannot encode %T, want a non-nil *activitypb.BackendApiActivity", v)
	}
	n := ev.SizeVT()
	b = slices.Grow(b, n)
	if _, err := ev.MarshalToSizedBufferVT(b[len(b) : len(b)+n]); err != nil {
		return b, fmt.Errorf("confluent: marshal event: %w", err)
	}
	return b[:len(b)+n], nil
}

// SchemaID is the id the encoder frames with.
func (e *Encoder) SchemaID() int { return e.id }

// Encode returns the framed record of ev.
func (e *Encoder) Encode(ev *activitypb.BackendApiActivity) ([]byte, error) {
	return e.AppendEncode(nil, ev)
}

// AppendEncode appends the framed record of ev to dst.
func (e *Encoder) AppendEncode(dst []byte, ev *activitypb.BackendApiActivity) ([]byte, error) {
	if ev == nil {
		return dst, errors.New("confluent: cannot encode a nil event")
	}
	return e.serde.AppendEncode(dst, ev)
}

// Frame returns payload, the protobuf encoding of a BackendApiActivity,
// behind the header: magic byte, schema id, message indexes.
func (e *Encoder) Frame(payload []byte) []byte { return e.AppendFrame(nil, payload) }

// AppendFrame appends the header and payload to dst.
func (e *Encoder) AppendFrame(dst, payload []byte) []byte {
	var h sr.ConfluentHeader
	dst, _ = h.AppendEncode(dst, e.id, e.index) // never fails
	return append(dst, payload...)
}

// Codec is a goka codec (goka.Codec) for the activity topic: Encode frames a
// *activitypb.BackendApiActivity with the schema id of its source, and fails
// with [ErrNotRegistered] while the source has none, so that a goka.Emitter
// built on it can never write an unframed record. Decode reads plain and
// framed records, accepting only the source's id (it never asks a registry).
type Codec struct {
	encoder func() *Encoder
	decoder *Decoder
}

// Encode implements goka.Codec.
func (c *Codec) Encode(value any) ([]byte, error) {
	ev, ok := value.(*activitypb.BackendApiActivity)
	if !ok {
		return nil, fmt.Errorf("confluent: cannot encode %T, want *activitypb.BackendApiActivity", value)
	}
	e := c.encoder()
	if e == nil {
		return nil, ErrNotRegistered
	}
	return e.Encode(ev)
}

// Decode implements goka.Codec; the value is a *activitypb.BackendApiActivity.
func (c *Codec) Decode(data []byte) (any, error) {
	ev, err := c.decoder.Decode(data)
	if err != nil {
		return nil, err
	}
	return ev, nil
}

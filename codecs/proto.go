// Package codecs holds the goka codecs Inarious puts on Kafka.
package codecs

import (
	"fmt"

	"google.golang.org/protobuf/proto"
)

// vtMessage is implemented by types with vtprotobuf's generated,
// reflection-free marshalling, which is several times faster on the hot path.
type vtMessage interface {
	MarshalVT() ([]byte, error)
	UnmarshalVT([]byte) error
}

// Proto is a goka codec for any protobuf message type M (used as *T).
// Decode returns a *T; Encode accepts a *T.
type Proto[T any, M interface {
	*T
	proto.Message
}] struct{}

// Encode marshals a *T. Any other type is an error, not a panic, because a
// wrong type here is a programming error that should surface in the callback.
func (Proto[T, M]) Encode(value any) ([]byte, error) {
	m, ok := value.(M)
	if !ok {
		var want M
		return nil, fmt.Errorf("codecs: cannot encode %T, want %T", value, want)
	}
	if vt, ok := any(m).(vtMessage); ok {
		return vt.MarshalVT()
	}
	return proto.Marshal(m)
}

// Decode unmarshals bytes into a new *T. Bytes that are not a valid message
// give an error.
func (Proto[T, M]) Decode(data []byte) (any, error) {
	m := M(new(T))
	var err error
	if vt, ok := any(m).(vtMessage); ok {
		err = vt.UnmarshalVT(data)
	} else {
		err = proto.Unmarshal(data, m)
	}
	if err != nil {
		return nil, fmt.Errorf("codecs: decode %T: %w", m, err)
	}
	return m, nil
}

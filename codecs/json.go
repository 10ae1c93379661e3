package codecs

import (
	"encoding/json"
	"fmt"
)

// JSON is a goka codec for any type T kept as a JSON document (small
// tables edited through the API, such as quota policies). Decode returns a
// *T; Encode accepts a *T.
type JSON[T any] struct{}

// Encode marshals a *T; any other type is an error.
func (JSON[T]) Encode(value any) ([]byte, error) {
	v, ok := value.(*T)
	if !ok {
		return nil, fmt.Errorf("codecs: cannot encode %T, want %T", value, v)
	}
	return json.Marshal(v)
}

// Decode unmarshals a JSON document into a new *T.
func (JSON[T]) Decode(data []byte) (any, error) {
	v := new(T)
	if err := json.Unmarshal(data, v); err != nil {
		return nil, fmt.Errorf("codecs: decode %T: %w", v, err)
	}
	return v, nil
}

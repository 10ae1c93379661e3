package testutil

import (
	"net/http"

	"github.com/inarious/inarious/codecs"
)

// EncodingTransport encodes each activity event as the Kafka transport does
// and settles it at once, so a benchmark counts the event's encoding but no
// Kafka client. It is a middleware.Transport (and api.EventProducer).
type EncodingTransport struct{ codec codecs.Activity }

func (e *EncodingTransport) Produce(_ string, msg any, done func(any, error)) error {
	if _, err := e.codec.Encode(msg); err != nil {
		return err
	}
	done(msg, nil)
	return nil
}

func (e *EncodingTransport) Close() error { return nil }

// DiscardWriter is a ResponseWriter that keeps nothing but its header map,
// reused across requests, so a benchmark measures the handler chain alone.
type DiscardWriter struct{ H http.Header }

func NewDiscardWriter() *DiscardWriter { return &DiscardWriter{H: http.Header{}} }

func (d *DiscardWriter) Header() http.Header         { return d.H }
func (d *DiscardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *DiscardWriter) WriteHeader(int)             {}

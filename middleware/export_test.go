package middleware

import (
	"context"
	"time"
)

// HTTPWait replaces the transport's pause between attempts, so tests can
// see what it waits without waiting.
func HTTPWait(wait func(ctx context.Context, d time.Duration) error) HTTPOption {
	return func(t *HTTPTransport) { t.wait = wait }
}

package middleware_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a test starts (buffer loops, transports) must be gone by the end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

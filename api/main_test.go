package api_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a test starts (publisher loops, flushers) must be gone by the end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

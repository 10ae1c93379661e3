package testutil_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inarious/inarious/internal/testutil"
)

func TestEventuallyReturnsOnceTheConditionHolds(t *testing.T) {
	var n atomic.Int32
	testutil.Eventually(t, 10*time.Second, func() (bool, string) {
		return n.Add(1) >= 3, fmt.Sprintf("%d calls", n.Load())
	})
	if got := n.Load(); got != 3 {
		t.Errorf("cond called %d times, want 3: Eventually must stop polling once it holds", got)
	}
}

// recorder catches the failure Eventually reports; Fatalf must end the
// calling goroutine like testing.T's does.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestEventuallyFailsWithTheLastMessage(t *testing.T) {
	r := &recorder{TB: t}
	var n int
	done := make(chan struct{})
	go func() {
		defer close(done)
		testutil.Eventually(r, 30*time.Millisecond, func() (bool, string) {
			n++
			return false, fmt.Sprintf("saw %d", n)
		})
	}()
	<-done
	if !strings.HasPrefix(r.failed, "timed out after 30ms: saw ") || strings.HasSuffix(r.failed, "saw 1") {
		t.Errorf("failure %q: want the timeout and the message of the last of several checks", r.failed)
	}
}

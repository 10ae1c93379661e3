package testutil

import (
	"bytes"
	"strings"
	"sync"
)

// LogBuffer collects log output written from many goroutines.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Count is how many slog text lines have the message msg.
func (l *LogBuffer) Count(msg string) int {
	return strings.Count(l.String(), `msg="`+msg+`"`)
}

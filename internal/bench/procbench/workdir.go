package procbench

import (
	"fmt"
	"os"
)

// WorkDir creates a fresh directory for a benchmark's local storage inside
// parent (the system's temporary directory when parent is empty) and
// returns it with a cleanup that removes that directory and nothing else.
// parent may be the user's own directory: it is never removed or emptied.
func WorkDir(parent string) (dir string, cleanup func() error, err error) {
	if parent != "" {
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return "", nil, fmt.Errorf("benchmark directory: %w", err)
		}
	}
	dir, err = os.MkdirTemp(parent, "inarious-bench-")
	if err != nil {
		return "", nil, fmt.Errorf("benchmark directory: %w", err)
	}
	return dir, func() error { return os.RemoveAll(dir) }, nil
}

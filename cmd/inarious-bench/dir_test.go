package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// A recovery run on the embedded broker with --dir pointing at a directory
// holding the user's files, including a worker/ subdirectory like the one
// the benchmark wipes for its cold start: the files must all survive.
func TestDirGivenByTheUserIsNeverDeleted(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a small benchmark")
	}
	parent := t.TempDir()
	files := []string{filepath.Join(parent, "notes.txt"), filepath.Join(parent, "worker", "precious"), filepath.Join(parent, "view", "precious")}
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("mine"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	err := recovery(context.Background(), []string{"--dir", parent, "--clients", "20", "--runs", "1", "--partitions", "1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if b, err := os.ReadFile(f); err != nil || string(b) != "mine" {
			t.Errorf("%s: %q, %v; the benchmark must leave the given directory's contents alone", f, b, err)
		}
	}
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Errorf("given directory holds %d entries after the run, want the user's 3: the benchmark's own directory must be removed", len(entries))
	}
}

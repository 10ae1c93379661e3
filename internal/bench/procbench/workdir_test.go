package procbench_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/inarious/inarious/internal/bench/procbench"
)

func TestWorkDirRemovesOnlyWhatItCreated(t *testing.T) {
	parent := t.TempDir()
	mine := filepath.Join(parent, "worker", "precious")
	if err := os.MkdirAll(filepath.Dir(mine), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mine, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir, cleanup, err := procbench.WorkDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(dir) != parent {
		t.Fatalf("work dir %s is not a new directory inside %s", dir, parent)
	}
	if err := os.WriteFile(filepath.Join(dir, "table"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("work dir still there after cleanup: %v", err)
	}
	if _, err := os.Stat(mine); err != nil {
		t.Errorf("the user's file in the given directory is gone: %v", err)
	}
}

func TestWorkDirCreatesAMissingParentAndKeepsIt(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "new", "bench")
	dir, cleanup, err := procbench.WorkDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(dir) != parent {
		t.Fatalf("work dir %s not inside %s", dir, parent)
	}
	if err := cleanup(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(parent); err != nil || !fi.IsDir() {
		t.Errorf("given directory gone after cleanup: %v", err)
	}
}

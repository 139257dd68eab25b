//go:build linux

package layer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSize counts as Docker's SizeRw does: files and symlinks by their
// own size, a hard-linked file once, no directories, nothing a symlink
// points to, and trees deeper than the walk keeps descriptors for.
func TestSize(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "big"), make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	write := func(rel string, n int) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a", 5000)
	write("empty", 0)
	if err := os.Link(filepath.Join(root, "a"), filepath.Join(root, "a-link")); err != nil {
		t.Fatal(err)
	}
	// A symlink counts its own length, never what it points to.
	target := filepath.Join(outside, "big")
	if err := os.Symlink(target, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "escape-dir")); err != nil {
		t.Fatal(err)
	}
	deep := strings.Repeat("d/", 3*maxWalkFDs)
	write(deep+"f", 7)
	write("d/g", 11) // after the deep walk came back up

	got, err := Size(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	want := int64(5000 + len(target) + len(outside) + 7 + 11)
	if got != want {
		t.Errorf("Size = %d, want %d", got, want)
	}
	if n, err := Size(context.Background(), filepath.Join(root, "missing")); err != nil || n != 0 {
		t.Errorf("Size of a missing dir = %d, %v; want 0, nil", n, err)
	}
}

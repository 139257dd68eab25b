package metadata

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLockWaitHonoursContext: a transaction waiting for another process's
// write lock gives up when its context ends.
func TestLockWaitHonoursContext(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "metadata.db.lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err = s.View(ctx, func(*Tx) error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("View while the store is locked: %v", err)
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	if err := s.View(context.Background(), func(*Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

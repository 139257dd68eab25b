package lockfile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func open(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestFlockHonoursContext: a wait for a held lock ends with ctx, leaves
// the lock to the next taker, and a wait that the holder ends succeeds.
func TestFlockHonoursContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	holder := open(t, path)
	if err := Flock(context.Background(), holder, unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		how  int
	}{{"exclusive", unix.LOCK_EX}, {"shared", unix.LOCK_SH}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			errc := make(chan error, 1)
			go func() { errc <- Flock(ctx, open(t, path), tc.how) }()
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Fatalf("wait after cancel: %v", err)
			}
		})
	}
	waiter := open(t, path)
	errc := make(chan error, 1)
	go func() { errc <- Flock(context.Background(), waiter, unix.LOCK_EX) }()
	select {
	case err := <-errc:
		t.Fatalf("took a held lock: %v", err)
	case <-time.After(50 * time.Millisecond): // no assertion on time: only that it still waits
	}
	unix.Flock(int(holder.Fd()), unix.LOCK_UN)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// The abandoned waiters above did not keep the lock: the waiter has it.
	probe := open(t, path)
	if err := unix.Flock(int(probe.Fd()), unix.LOCK_EX|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Fatalf("lock not held by the waiter: %v", err)
	}
}

package container

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

const testID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// TestContainerLock: one holder at a time, waits end with ctx, a finished
// transition leaves no file, and a released one (create's, for run's
// start) leaves its file for the sweep.
func TestContainerLock(t *testing.T) {
	s := &Service{opts: Options{RunRoot: t.TempDir()}}
	ctx := context.Background()
	l, err := s.lock(ctx, testID)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.tryLock(testID); ok {
		t.Fatal("tryLock took a held lock")
	}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := s.lock(wctx, testID); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait for a held lock: %v", err)
	}
	got := make(chan *ctrLock)
	go func() {
		l2, err := s.lock(ctx, testID)
		if err != nil {
			t.Error(err)
		}
		got <- l2
	}()
	l.unlock() // removes the file: the waiter must take the new one
	l2 := <-got
	if !l2.current() {
		t.Fatal("waiter holds a removed lock file")
	}
	if _, ok, _ := s.tryLock(testID); ok {
		t.Fatal("two holders")
	}
	l2.release()
	if _, err := os.Stat(s.lockPath(testID)); err != nil {
		t.Fatalf("released lock lost its file: %v", err)
	}
	l3, ok, err := s.tryLock(testID)
	if err != nil || !ok {
		t.Fatalf("tryLock of a released lock: %v %v", ok, err)
	}
	l3.unlock()
	if _, err := os.Stat(s.lockPath(testID)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lock file left after unlock: %v", err)
	}
}

package metadata

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// holdWriteLock takes the store's lock as another process's writer would
// and returns its release.
func holdWriteLock(t *testing.T, s *Store) func() {
	t.Helper()
	f, err := os.OpenFile(s.path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	return func() { f.Close() }
}

// waitQueued waits until n Batch calls are queued.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		s.batch.mu.Lock()
		got := len(s.batch.queue)
		s.batch.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestBatch(t *testing.T) {
	errRefused := errors.New("refused")
	for _, tc := range []struct {
		name string
		// fail: the index of the call that fails (-1: none)
		fail    int
		commits uint64
	}{
		{name: "calls waiting together share one commit", fail: -1, commits: 1},
		// The shared transaction is rolled back; the two others run
		// again alone.
		{name: "a failed call does not take the others with it", fail: 1, commits: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, err := Open(ctx, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			before, err := s.Commits(ctx)
			if err != nil {
				t.Fatal(err)
			}
			release := holdWriteLock(t, s)
			const n = 3
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					errs[i] = s.Batch(ctx, func(tx *Tx) error {
						if i == tc.fail {
							return errRefused
						}
						return tx.Put(BucketVolumes, fmt.Sprint(i), i)
					})
				})
			}
			waitQueued(t, s, n)
			release()
			wg.Wait()
			for i := range n {
				want := error(nil)
				if i == tc.fail {
					want = errRefused
				}
				if !errors.Is(errs[i], want) {
					t.Errorf("call %d: %v, want %v", i, errs[i], want)
				}
				err := s.View(ctx, func(tx *Tx) error {
					if got := tx.Has(BucketVolumes, fmt.Sprint(i)); got != (i != tc.fail) {
						t.Errorf("key %d stored: %v", i, got)
					}
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			after, err := s.Commits(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if after-before != tc.commits {
				t.Errorf("%d commits, want %d", after-before, tc.commits)
			}
		})
	}
}

// TestBatchAfterBatch: a call made while a batch commits leads the next.
func TestBatchAfterBatch(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	entered := make(chan struct{})
	proceed := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		s.Batch(ctx, func(tx *Tx) error {
			close(entered)
			<-proceed
			return tx.Put(BucketVolumes, "first", 1)
		})
	})
	<-entered
	wg.Go(func() {
		if err := s.Batch(ctx, func(tx *Tx) error { return tx.Put(BucketVolumes, "second", 2) }); err != nil {
			t.Error(err)
		}
	})
	waitQueued(t, s, 1)
	close(proceed)
	wg.Wait()
	s.View(ctx, func(tx *Tx) error {
		if !tx.Has(BucketVolumes, "first") || !tx.Has(BucketVolumes, "second") {
			t.Error("a batch was lost")
		}
		return nil
	})
}

package snapshot

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Callers that ask while a syncfs runs share the next one, and none
// returns before a syncfs that began after its call has finished.
func TestSyncerGroupsCallers(t *testing.T) {
	s := newSyncer()
	var calls atomic.Int32
	first := make(chan struct{})
	release := make(chan struct{})
	s.syncfs = func(int) error {
		if calls.Add(1) == 1 {
			close(first)
			<-release
		}
		return nil
	}
	var wg sync.WaitGroup
	wg.Go(func() { s.sync(0) })
	<-first
	// Five callers arrive while the first syncfs runs: it may have begun
	// before their writes, so they need (and share) a second one.
	var returned atomic.Int32
	for range 5 {
		wg.Go(func() {
			s.sync(0)
			returned.Add(1)
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		queued := s.waiters == 5
		s.mu.Unlock()
		if queued {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("callers did not queue")
		}
		time.Sleep(time.Millisecond)
	}
	if n := returned.Load(); n != 0 {
		t.Fatalf("%d callers returned before a syncfs that began after their call", n)
	}
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 2 {
		t.Errorf("syncfs called %d times for six callers, want 2", n)
	}
}

package snapshot

import (
	"sync"

	"golang.org/x/sys/unix"
)

// syncer makes extracted snapshots durable with syncfs(2) on the store's
// filesystem (not sync(2), which also waits for every other filesystem's
// dirty data), and lets callers that ask while a syncfs runs share the
// next one: the layers of a pull finish close together, and one flush
// after the last of them covers them all.
type syncer struct {
	mu      sync.Mutex
	cond    sync.Cond
	started uint64 // syncfs calls begun
	done    uint64 // the last finished
	running bool
	waiters int   // callers waiting for a syncfs (for tests)
	err     error // of the last finished
	syncfs  func(fd int) error
}

func newSyncer() *syncer {
	s := &syncer{syncfs: unix.Syncfs}
	s.cond.L = &s.mu
	return s
}

// sync returns once a syncfs of fd's filesystem that began after the call
// has finished. Every caller passes a descriptor on the same filesystem.
func (s *syncer) sync(fd int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// One already running may have begun before the caller's writes: the
	// next one is the first that surely covers them.
	want := s.started + 1
	for s.done < want {
		if s.running {
			s.waiters++
			s.cond.Wait()
			s.waiters--
			continue
		}
		s.running = true
		s.started++
		gen := s.started
		s.mu.Unlock()
		err := s.syncfs(fd)
		s.mu.Lock()
		s.running, s.done, s.err = false, gen, err
		s.cond.Broadcast()
	}
	return s.err
}

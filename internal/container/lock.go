package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/lockfile"
)

// A container lock makes one process the owner of a container's state
// transition (create, start, stop, kill, pause, unpause, remove,
// reconcile): whoever holds it reads the record, acts, and writes the
// outcome, and a second process asking for the same transition waits and
// then sees the first one's result. It is a flock on
// <runroot>/locks/<id>, so the kernel drops it when its holder dies, even
// by kill -9. The file exists only while a transition runs: one that is
// found without a holder marks a transition whose process died, which
// sweepCrashed reconciles. Monitors never take it (a transition may wait
// for a monitor while holding it); they change only what they own, the
// record of the run they started.
type ctrLock struct {
	f    *os.File
	path string
}

func (s *Service) lockDir() string { return filepath.Join(s.opts.RunRoot, "locks") }

func (s *Service) lockPath(id string) string { return filepath.Join(s.lockDir(), id) }

// lock takes container id's lock, waiting for the current holder as long
// as ctx allows.
func (s *Service) lock(ctx context.Context, id string) (*ctrLock, error) {
	for {
		l, err := s.openLock(id)
		if err != nil {
			return nil, err
		}
		if err := lockfile.Flock(ctx, l.f, unix.LOCK_EX); err != nil {
			l.f.Close()
			return nil, fmt.Errorf("wait for another berth process working on container %s: %w", shortID(id), err)
		}
		if l.current() {
			return l, nil
		}
		l.f.Close() // its holder removed the file meanwhile: take the new one
	}
}

// relock takes again the lock l that its holder let go.
func (s *Service) relock(ctx context.Context, l *ctrLock) error {
	n, err := s.lock(ctx, l.id())
	if err != nil {
		return err
	}
	*l = *n
	return nil
}

// tryLock takes id's lock if nobody holds it.
func (s *Service) tryLock(id string) (*ctrLock, bool, error) {
	for {
		l, err := s.openLock(id)
		if err != nil {
			return nil, false, err
		}
		if err := unix.Flock(int(l.f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			l.f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, false, nil
			}
			return nil, false, err
		}
		if l.current() {
			return l, true, nil
		}
		l.f.Close()
	}
}

func (s *Service) openLock(id string) (*ctrLock, error) {
	p := s.lockPath(id)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if errors.Is(err, os.ErrNotExist) {
		if err = os.MkdirAll(s.lockDir(), 0o700); err == nil {
			f, err = os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("container lock: %w", err)
	}
	return &ctrLock{f: f, path: p}, nil
}

// current reports whether the locked file is still the one at the lock's
// path: a holder removes the file before it lets go, and a process that
// was waiting on it must then lock the new file instead.
func (l *ctrLock) current() bool {
	var a, b unix.Stat_t
	if unix.Fstat(int(l.f.Fd()), &a) != nil || unix.Stat(l.path, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

// unlock ends the transition: the file goes first, so that a lock file
// without a holder always means a transition that did not finish.
func (l *ctrLock) unlock() {
	if l == nil || l.f == nil {
		return
	}
	os.Remove(l.path)
	l.f.Close()
	l.f = nil
}

// release lets go of the lock but leaves its file, marking a transition
// that continues in a later call (run's create, then start): if this
// process dies before that call, the next sweep finds the file.
func (l *ctrLock) release() {
	if l == nil || l.f == nil {
		return
	}
	l.f.Close()
	l.f = nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

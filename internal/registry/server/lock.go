package server

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrLocked: another process serves (or collects) this root. The
// in-memory state that keeps online collection safe (sessions, recently
// touched digests, gcMu) belongs to one process, so one process at a
// time works on a root.
var ErrLocked = errors.New("registry root in use")

// LockedError names the process that holds a root.
type LockedError struct {
	Root string
	PID  int
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%s is in use by process %d", e.Root, e.PID)
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// Lock takes the root's lock file (flock, released when the process
// ends) and writes this process's id into it.
func (s *Server) Lock() (unlock func(), err error) {
	const path = "serve.lock"
	f, err := s.store.r.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := s.store.readFile(path)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			return nil, &LockedError{Root: s.store.root, PID: pid}
		}
		return nil, err
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return func() { f.Close() }, nil
}

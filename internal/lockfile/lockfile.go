// Package lockfile waits for flock locks as long as a context allows.
package lockfile

import (
	"context"
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// Flock takes a flock of kind how (LOCK_SH or LOCK_EX) on f, giving up
// when ctx ends. Uncontended, it costs one system call; contended, a
// blocking flock on a duplicate descriptor (which shares f's lock) waits
// in a goroutine, which drops the lock if it gets it after ctx ended.
func Flock(ctx context.Context, f *os.File, how int) error {
	err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
	if err == nil || !errors.Is(err, unix.EWOULDBLOCK) {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		var err error
		for {
			if err = unix.Flock(fd, how); err != unix.EINTR {
				break
			}
		}
		done <- err
	}()
	select {
	case err := <-done:
		unix.Close(fd)
		return err
	case <-ctx.Done():
		go func() {
			if <-done == nil {
				unix.Flock(fd, unix.LOCK_UN)
			}
			unix.Close(fd)
		}()
		return ctx.Err()
	}
}

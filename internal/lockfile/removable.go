package lockfile

import (
	"context"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Lock files that can be deleted. A lock file kept for every berth root
// that ever ran piles up in a host-wide directory; deleting one is only
// safe if a process that opened it just before cannot go on holding a
// lock on a file nobody else will open: it would then run beside the
// next holder of the new file. So the one who deletes holds the
// exclusive lock and unlinks the file as its last act under it (Remove),
// and every taker checks, once it has the lock, that the file it locked
// is still the one at the path, and otherwise starts again.

// OpenLocked opens the lock file at path (creating it when create;
// without create a missing file is an error satisfying os.IsNotExist)
// and takes a flock of kind how on it. The lock it returns is on the
// file the path names while the lock is held; closing the file ends it.
func OpenLocked(ctx context.Context, path string, how int, create bool) (*os.File, error) {
	flags := os.O_RDWR | unix.O_CLOEXEC
	if create {
		flags |= os.O_CREATE
	}
	for {
		f, err := os.OpenFile(path, flags, 0o600)
		if err != nil {
			return nil, err
		}
		if err := Flock(ctx, f, how); err != nil {
			f.Close()
			return nil, err
		}
		same, err := isPathOf(f, path)
		if err != nil || same {
			if err != nil {
				f.Close()
				return nil, err
			}
			return f, nil
		}
		// Deleted (and maybe made again) while we waited.
		f.Close()
		if !create {
			if _, err := os.Stat(path); err != nil {
				return nil, err
			}
		}
	}
}

// isPathOf reports whether f is the file at path now.
func isPathOf(f *os.File, path string) (bool, error) {
	var held, now unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &held); err != nil {
		return false, fmt.Errorf("lock file %s: %w", path, err)
	}
	if err := unix.Stat(path, &now); err != nil {
		if os.IsNotExist(err) {
			return false, nil
		}
		return false, fmt.Errorf("lock file %s: %w", path, err)
	}
	return held.Dev == now.Dev && held.Ino == now.Ino, nil
}

// Remove deletes the lock file f, taken by OpenLocked with LOCK_EX and
// still held. Nothing that needs the lock may follow it but closing f:
// whoever opens the path from now on gets a new file and its lock.
func Remove(f *os.File) error {
	if err := os.Remove(f.Name()); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

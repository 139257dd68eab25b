package lockfile

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRemoveUnderLock: takers of a lock file that its exclusive holders
// keep deleting never hold it at once: one that opened the file before
// its deletion notices and opens the new one.
func TestRemoveUnderLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	var exclusive, shared, removed atomic.Int32
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	fail := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				how := unix.LOCK_EX
				if g%2 == 1 && i%2 == 0 {
					how = unix.LOCK_SH
				}
				f, err := OpenLocked(context.Background(), path, how, true)
				if err != nil {
					fail(err)
					return
				}
				if how == unix.LOCK_SH {
					shared.Add(1)
					if exclusive.Load() != 0 {
						fail(errf("a shared holder beside an exclusive one"))
					}
					shared.Add(-1)
				} else {
					if exclusive.Add(1) != 1 || shared.Load() != 0 {
						fail(errf("two holders at once"))
					}
					// Some work under the lock, for the others to
					// come and wait on this file meanwhile.
					time.Sleep(20 * time.Microsecond)
					exclusive.Add(-1)
					if i%3 == 0 {
						// Its last act under the lock.
						if err := Remove(f); err != nil {
							fail(err)
						}
						removed.Add(1)
					}
				}
				f.Close()
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		t.Fatal(err)
	default:
	}
	if removed.Load() == 0 {
		t.Fatal("nothing was removed")
	}
}

type errf string

func (e errf) Error() string { return string(e) }

// TestOpenLockedWithoutCreate: a missing lock file is reported, not made.
func TestOpenLockedWithoutCreate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	if _, err := OpenLocked(context.Background(), path, unix.LOCK_SH, false); !os.IsNotExist(err) {
		t.Fatalf("OpenLocked of a missing file: %v", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the file was made: %v", err)
	}
	f, err := OpenLocked(context.Background(), path, unix.LOCK_EX, true)
	if err != nil {
		t.Fatal(err)
	}
	// A taker waiting on the file while it is removed gets ENOENT.
	done := make(chan error, 1)
	go func() {
		g, err := OpenLocked(context.Background(), path, unix.LOCK_SH, false)
		if err == nil {
			g.Close()
		}
		done <- err
	}()
	if err := Remove(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := <-done; err != nil && !os.IsNotExist(err) {
		t.Fatalf("waiter: %v", err)
	}
}

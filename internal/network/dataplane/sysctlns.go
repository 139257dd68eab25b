package dataplane

import (
	"errors"
	"fmt"
	"io/fs"
	"runtime"

	"golang.org/x/sys/unix"
)

// setSysctlIn writes a sysctl under /proc/sys/net in the network
// namespace nsFd: those files show the namespace of the thread that opens
// them, so a thread locked to this goroutine enters it and comes back
// (or, failing to come back, stays locked and dies with the goroutine).
// A sysctl the kernel does not have (no IPv6) is not an error.
func setSysctlIn(nsFd int, path, val string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		back, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(back)
		if err := unix.Setns(nsFd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		err = writeSysctl(path, val)
		if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
		if serr := unix.Setns(back, unix.CLONE_NEWNET); serr != nil {
			errc <- fmt.Errorf("return to the host's network namespace: %w", serr)
			return // the thread stays locked and dies with the goroutine
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	return <-errc
}

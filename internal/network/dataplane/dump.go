package dataplane

import (
	"errors"

	"github.com/vishvananda/netlink"
)

// dumpRetries bounds how often an interrupted dump is read again.
const dumpRetries = 10

// dump runs a netlink dump and reads it again when the kernel reports it
// interrupted: the table changed while it was read (as it does while other
// containers start and stop), so what came may miss or repeat entries.
func dump[T any](list func() (T, error)) (T, error) {
	var out T
	var err error
	for range dumpRetries {
		if out, err = list(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return out, err
}

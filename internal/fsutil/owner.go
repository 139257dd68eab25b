//go:build unix

package fsutil

import (
	"strconv"
	"strings"
	"syscall"
)

// OwnerDead reports whether name is prefix followed by the pid of a
// process that no longer exists and a '-' (how the stores name what a
// process is writing or removing, so that what a crashed one left can be
// told from what a live one is still working on). Names of another form
// are never taken as dead.
func OwnerDead(name, prefix string) bool {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return false
	}
	num, _, ok := strings.Cut(rest, "-")
	if !ok {
		return false
	}
	pid, err := strconv.Atoi(num)
	if err != nil || pid <= 0 {
		return false
	}
	return syscall.Kill(pid, 0) == syscall.ESRCH
}

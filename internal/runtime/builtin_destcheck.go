package runtime

import (
	"fmt"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// A mount's destination is resolved inside the container's root, and a
// container sharing a volume with it can make a directory of the volume a
// symlink to anywhere in that root. Two places must not be reachable that
// way. /proc is the kernel's, and what the runtime hides or makes
// read-only in it (masked and read-only paths, sysctls) would be replaced
// by the attacker's files: runc refuses any mount inside /proc but a few
// files that lxcfs stands in for, and a mount on /proc itself but of a
// procfs; so does berth, judging the path the destination resolved to,
// not the one written. /sys is the kernel's too, with masked paths in it;
// runc lets a mount go there, but a destination that only reaches /sys
// through a symlink (the written path is not the resolved one) is refused:
// a spec that means /sys says so. Both rules hold only if the procfs and
// the sysfs are at /proc and /sys: as runc, berth mounts them only on
// the directories written, never through a symlink of the image.

// destGuard judges where a mount's destination resolved inside the root
// before anything is created or mounted there: resolved is the path the
// lookup has reached; final says whether it is the mount point itself or
// a missing directory on the way that is about to be created.
type destGuard func(resolved string, final bool) error

// lxcfsProcFiles are the files inside /proc that a mount may cover
// (runc's list: lxcfs shows a container's own view of them).
var lxcfsProcFiles = []string{
	"/proc/cpuinfo",
	"/proc/diskstats",
	"/proc/meminfo",
	"/proc/stat",
	"/proc/swaps",
	"/proc/uptime",
	"/proc/loadavg",
	"/proc/slabinfo",
	"/proc/net/dev",
	"/proc/sys/kernel/ns_last_pid",
}

// specMountGuard is the guard for the spec's mount m; procSource says
// whether it mounts a procfs (a new one, or a bind of one).
func specMountGuard(m specs.Mount, procSource bool) destGuard {
	return destRule{dest: m.Destination, fstype: m.Type, procSource: procSource}.check
}

// destRule is what the rule above needs to know of a mount.
type destRule struct {
	dest       string // the destination as written
	fstype     string // the spec's type
	procSource bool   // a new procfs, or a bind of a procfs's file
}

// check is the rule for a destination whose lookup reached resolved.
func (d destRule) check(resolved string, final bool) error {
	dest := d.dest
	if final && (d.fstype == "proc" || d.fstype == "sysfs") && resolved != filepath.Clean("/"+dest) {
		// As runc: /proc and /sys are where the rule above expects the
		// kernel's files only if they were mounted where written.
		return fmt.Errorf("mount destination %s resolves to %s: a %s filesystem must be mounted on an ordinary directory, not through a symlink", dest, resolved, d.fstype)
	}
	switch {
	case resolved == "/proc":
		if final && !d.procSource {
			return fmt.Errorf("mount destination %s resolves to /proc: only a proc filesystem may be mounted there", dest)
		}
	case pathWithin(resolved, "/proc"):
		if !lxcfsProcEntry(resolved, final) {
			return fmt.Errorf("mount destination %s resolves to %s, inside /proc: refusing to mount there", dest, resolved)
		}
	case pathWithin(resolved, "/sys") || resolved == "/sys":
		written := filepath.Clean("/" + dest)
		if final && written != resolved || !final && !pathWithin(written, resolved) {
			return fmt.Errorf("mount destination %s resolves to %s, inside /sys, through a symlink: refusing to mount there", dest, resolved)
		}
	}
	return nil
}

// lxcfsProcEntry says whether p is one of lxcfsProcFiles or, when it is
// a directory on the way (not final), one that leads to one of them.
func lxcfsProcEntry(p string, final bool) bool {
	for _, f := range lxcfsProcFiles {
		if p == f || !final && pathWithin(f, p) {
			return true
		}
	}
	return false
}

// pathWithin says whether p is strictly below dir (both clean and
// absolute).
func pathWithin(p, dir string) bool {
	return strings.HasPrefix(p, dir+"/")
}

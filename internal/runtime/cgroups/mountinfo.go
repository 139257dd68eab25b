package cgroups

import (
	"bufio"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
)

// Mode is how the host's cgroup hierarchies are laid out.
type Mode int

const (
	// Legacy hosts mount only cgroup v1 hierarchies.
	Legacy Mode = iota + 1
	// Hybrid hosts mount the v1 hierarchies plus an empty cgroup2 hierarchy
	// (usually at /sys/fs/cgroup/unified) that systemd uses to track
	// processes; every controller lives in v1.
	Hybrid
	// Unified hosts mount a single cgroup2 hierarchy holding every
	// controller.
	Unified
)

func (m Mode) String() string {
	switch m {
	case Legacy:
		return "v1"
	case Hybrid:
		return "hybrid"
	case Unified:
		return "v2"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// hierarchy is one mounted cgroup hierarchy.
type hierarchy struct {
	// controllers are the v1 controllers bound to the hierarchy, named as
	// /proc/self/cgroup names them ("cpu", "cpuacct", "name=systemd"); nil
	// for the v2 hierarchy.
	controllers []string
	mountpoint  string
}

// layout is what New learns about the host from mountinfo.
type layout struct {
	mode Mode
	// v1 holds one entry per v1 hierarchy (nil when unified), in mount
	// order.
	v1 []hierarchy
	// v2 is the cgroup2 mount point, "" when there is none.
	v2 string
}

// mountEntry is the part of a mountinfo line that layout needs.
type mountEntry struct {
	device     string // major:minor, the same for every mount of one hierarchy
	root       string // the directory of the filesystem mounted here
	mountpoint string
	fstype     string
	superOpts  string
}

// parseMountinfo reads the cgroup and cgroup2 mounts of a
// /proc/<pid>/mountinfo file (see proc(5)).
func parseMountinfo(r io.Reader) ([]mountEntry, error) {
	var out []mountEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20) // a line can carry long option lists
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
		sep := slices.Index(fields, "-")
		if sep < 6 || len(fields) < sep+4 {
			return nil, fmt.Errorf("malformed mountinfo line %q", line)
		}
		fstype := fields[sep+1]
		if fstype != "cgroup" && fstype != "cgroup2" {
			continue
		}
		out = append(out, mountEntry{
			device:     fields[2],
			root:       unescapeMountField(fields[3]),
			mountpoint: unescapeMountField(fields[4]),
			fstype:     fstype,
			superOpts:  fields[sep+3],
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return out, nil
}

// unescapeMountField undoes the kernel's octal escaping of space, tab,
// newline and backslash in mountinfo paths.
func unescapeMountField(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// v1Controllers lists the controllers of a v1 hierarchy from its super
// options, e.g. "rw,cpu,cpuacct" or "rw,xattr,name=systemd".
func v1Controllers(superOpts string) []string {
	var out []string
	for _, opt := range strings.Split(superOpts, ",") {
		switch {
		case strings.HasPrefix(opt, "name="):
			out = append(out, opt)
		case opt == "" || strings.Contains(opt, "="): // release_agent=...
		case opt == "rw" || opt == "ro" || opt == "xattr" || opt == "noprefix" ||
			opt == "clone_children" || opt == "cpuset_v2_mode" || opt == "all" ||
			opt == "none" || opt == "favordynmods" || opt == "nofavordynmods":
			// mount flags, not controllers
		default:
			out = append(out, opt)
		}
	}
	return out
}

// detectLayout decides the host's mode from its cgroup mounts. A hierarchy
// mounted more than once (bind mounts) is used through one mount point,
// preferring a mount of its root directory.
func detectLayout(mounts []mountEntry) (layout, error) {
	var l layout
	seen := map[string]int{} // device -> index in l.v1
	var v2Mounts []mountEntry
	for _, mnt := range mounts {
		if mnt.fstype == "cgroup2" {
			v2Mounts = append(v2Mounts, mnt)
			continue
		}
		h := hierarchy{controllers: v1Controllers(mnt.superOpts), mountpoint: mnt.mountpoint}
		if len(h.controllers) == 0 {
			continue
		}
		if i, ok := seen[mnt.device]; ok {
			if mnt.root == "/" && !isRootMount(mounts, l.v1[i].mountpoint) {
				l.v1[i] = h
			}
			continue
		}
		seen[mnt.device] = len(l.v1)
		l.v1 = append(l.v1, h)
	}
	if len(v2Mounts) > 0 {
		// The canonical places first: /sys/fs/cgroup on a unified host,
		// /sys/fs/cgroup/unified on a hybrid one.
		best := v2Mounts[0]
		for _, mnt := range v2Mounts {
			if mnt.root == "/" && (mnt.mountpoint == "/sys/fs/cgroup" || mnt.mountpoint == "/sys/fs/cgroup/unified") {
				best = mnt
				break
			}
		}
		l.v2 = best.mountpoint
	}

	realV1 := slices.ContainsFunc(l.v1, func(h hierarchy) bool {
		return slices.ContainsFunc(h.controllers, func(c string) bool { return !strings.HasPrefix(c, "name=") })
	})
	switch {
	case realV1 && l.v2 != "":
		l.mode = Hybrid
	case realV1:
		l.mode = Legacy
	case l.v2 != "":
		// Named v1 hierarchies beside a unified mount (a leftover
		// name=systemd mount) carry no limits: ignore them, as systemd
		// and runc do in unified mode.
		l.mode, l.v1 = Unified, nil
	default:
		return layout{}, fmt.Errorf("no cgroup hierarchy is mounted")
	}
	return l, nil
}

// isRootMount reports whether mountpoint is, among mounts, a mount of its
// filesystem's root.
func isRootMount(mounts []mountEntry, mountpoint string) bool {
	for _, mnt := range mounts {
		if mnt.mountpoint == mountpoint {
			return mnt.root == "/"
		}
	}
	return false
}

// controllerOf is the controller a control file belongs to:
// "memory.limit_in_bytes" -> "memory".
func controllerOf(file string) string {
	c, _, _ := strings.Cut(filepath.Base(file), ".")
	return c
}

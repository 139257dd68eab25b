// Package cgroups manages the cgroup of one container on cgroup v1, hybrid
// (v1 plus an empty cgroup2 hierarchy) and unified (v2) hosts, writing the
// control files directly, as runc's cgroupfs driver does.
//
// A container's cgroup path (the runtime spec's linux.cgroupsPath, e.g.
// "/berth/<id>") is relative to the root of every hierarchy:
// /sys/fs/cgroup/<controller>/berth/<id> on v1,
// /sys/fs/cgroup/unified/berth/<id> beside them on a hybrid host, and
// /sys/fs/cgroup/berth/<id> on v2.
//
// On a hybrid host every limit lives in v1; the v2 cgroup only holds the
// processes, as systemd does, so that tools reading the v2 tree see them.
package cgroups

import (
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/internal/errdefs"
)

// mountinfoPath is where New learns the host's cgroup mounts.
const mountinfoPath = "/proc/self/mountinfo"

// Manager is one container's cgroup in every hierarchy of the host. It
// holds no mutable state, so its methods may be called concurrently; what
// they change is the kernel's cgroup tree.
type Manager struct {
	path   string
	layout layout
}

// New returns the manager of the cgroup at path, which must be absolute
// and clean, e.g. "/berth/<id>". It reads the host's cgroup mounts (see
// ReadHost and LoadHost).
func New(path string) (*Manager, error) {
	h, err := ReadHost()
	if err != nil {
		return nil, err
	}
	return h.Manager(path)
}

// newManager is New for a known layout.
func newManager(path string, l layout) (*Manager, error) {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path || path == "/" {
		return nil, errdefs.InvalidArgument("cgroups: invalid cgroup path %q: it must be absolute, clean and not the root, e.g. /berth/<id>", path)
	}
	return &Manager{path: path, layout: l}, nil
}

// Mode is the host's cgroup layout.
func (m *Manager) Mode() Mode { return m.layout.mode }

// Path is the cgroup path New was given.
func (m *Manager) Path() string { return m.path }

// Paths maps each controller to the cgroup's directory in the hierarchy
// holding it: v1 controllers by name (also named hierarchies such as
// "name=systemd"), and "" to the v2 directory (on hybrid hosts the one
// under the cgroup2 mount).
func (m *Manager) Paths() map[string]string {
	out := map[string]string{}
	for _, h := range m.layout.v1 {
		for _, c := range h.controllers {
			out[c] = m.dirIn(h.mountpoint)
		}
	}
	if m.layout.v2 != "" {
		out[""] = m.dirIn(m.layout.v2)
	}
	return out
}

// Exists reports whether the cgroup's directory exists in any hierarchy
// (so that Destroy still has something to do).
func (m *Manager) Exists() bool {
	for _, dir := range m.dirs() {
		if _, err := os.Stat(dir); err == nil {
			return true
		}
	}
	return false
}

func (m *Manager) dirIn(mountpoint string) string { return filepath.Join(mountpoint, m.path) }

// dirs lists the cgroup's directory in every hierarchy, one per
// hierarchy, v1 first.
func (m *Manager) dirs() []string {
	var out []string
	for _, h := range m.layout.v1 {
		out = append(out, m.dirIn(h.mountpoint))
	}
	if m.layout.v2 != "" {
		out = append(out, m.dirIn(m.layout.v2))
	}
	return out
}

// v1Hierarchy returns the v1 hierarchy holding controller.
func (m *Manager) v1Hierarchy(controller string) (hierarchy, bool) {
	for _, h := range m.layout.v1 {
		for _, c := range h.controllers {
			if c == controller {
				return h, true
			}
		}
	}
	return hierarchy{}, false
}

// v1Dir is the cgroup's directory in the v1 hierarchy of controller.
func (m *Manager) v1Dir(controller string) (string, bool) {
	h, ok := m.v1Hierarchy(controller)
	if !ok {
		return "", false
	}
	return m.dirIn(h.mountpoint), true
}

// processDir is the directory whose tree Pids reads: the v2 cgroup on a
// unified host, else the freezer's (what Freeze acts on) or, lacking a
// freezer, another v1 hierarchy's.
func (m *Manager) processDir() (string, error) {
	if m.layout.mode == Unified {
		return m.dirIn(m.layout.v2), nil
	}
	for _, c := range []string{"freezer", "pids", "memory", "cpu", "devices"} {
		if dir, ok := m.v1Dir(c); ok {
			return dir, nil
		}
	}
	if len(m.layout.v1) > 0 {
		return m.dirIn(m.layout.v1[0].mountpoint), nil
	}
	return "", errdefs.Unavailable("cgroups: no hierarchy to read processes from")
}

// Dirs lists the cgroup's directory in each v1 hierarchy, with that
// hierarchy's mount point, and its v2 directory ("" without one), for a
// runtime that shows a container its own cgroups.
func (m *Manager) Dirs() (v1 []MountedDir, v2 MountedDir) {
	for _, h := range m.layout.v1 {
		v1 = append(v1, MountedDir{Mountpoint: h.mountpoint, Dir: m.dirIn(h.mountpoint)})
	}
	if m.layout.v2 != "" {
		v2 = MountedDir{Mountpoint: m.layout.v2, Dir: m.dirIn(m.layout.v2)}
	}
	return v1, v2
}

// MountedDir is a cgroup directory and the mount point of its hierarchy.
type MountedDir struct{ Mountpoint, Dir string }

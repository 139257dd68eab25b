package cgroups

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Host is the host's cgroup layout: which hierarchies are mounted where.
type Host struct {
	layout layout
}

// ReadHost learns the layout from mountinfo.
func ReadHost() (*Host, error) {
	f, err := os.Open(mountinfoPath)
	if err != nil {
		return nil, errdefs.Unavailable("cgroups: %w", err)
	}
	defer f.Close()
	mounts, err := parseMountinfo(f)
	if err != nil {
		return nil, errdefs.Unavailable("cgroups: %s: %w", mountinfoPath, err)
	}
	l, err := detectLayout(mounts)
	if err != nil {
		return nil, errdefs.Unavailable("cgroups: %w", err)
	}
	return &Host{layout: l}, nil
}

// Manager returns the manager of the cgroup at path (see New).
func (h *Host) Manager(path string) (*Manager, error) { return newManager(path, h.layout) }

// LoadHost is ReadHost through a cache file at cachePath (on a tmpfs, so
// that it does not outlive the mounts it describes). Every container start
// needs the layout, and mountinfo grows with the containers running (each
// adds its overlay mount): with hundreds of them, reading it costs
// milliseconds. The cache is used only while it still matches the host:
// the same hierarchies in /proc/self/cgroup, and at each mount point the
// same filesystem (device) and directory (inode) as when it was written;
// otherwise mountinfo is read again and the cache rewritten.
func LoadHost(cachePath string) (*Host, error) {
	key, err := hierarchyKey()
	if err != nil {
		return ReadHost()
	}
	if h, ok := readHostCache(cachePath, key); ok {
		return h, nil
	}
	h, err := ReadHost()
	if err != nil {
		return nil, err
	}
	writeHostCache(cachePath, key, h) // best effort: the next start reads mountinfo again
	return h, nil
}

// hierarchyKey lists the hierarchies /proc/self/cgroup shows ("ID:controllers"
// per line, without this process's own cgroup path).
func hierarchyKey() (string, error) {
	raw, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	var parts []string
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		id, rest, ok := strings.Cut(line, ":")
		ctrls, _, ok2 := strings.Cut(rest, ":")
		if !ok || !ok2 {
			return "", fmt.Errorf("malformed /proc/self/cgroup line %q", line)
		}
		parts = append(parts, id+":"+ctrls)
	}
	return strings.Join(parts, ";"), nil
}

// hostCacheVersion starts the cache file; a berth that writes it
// differently changes it.
const hostCacheVersion = "berth-cgroup-layout 2"

// mountID is what the cache checks a mount point against.
func mountID(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", err
	}
	return strconv.FormatUint(st.Dev, 10) + ":" + strconv.FormatUint(st.Ino, 10), nil
}

// mountIDs lists the mountID of each of l's mount points.
func mountIDs(l layout) (string, error) {
	var ids []string
	for _, mp := range l.mountpoints() {
		id, err := mountID(mp)
		if err != nil {
			return "", err
		}
		ids = append(ids, id)
	}
	return strings.Join(ids, " "), nil
}

// The cache file has four lines: the version, the hierarchy key, the
// layout's encoding and the mount points' IDs.
func writeHostCache(path, key string, h *Host) {
	enc := h.layout.encode()
	ids, err := mountIDs(h.layout)
	if err != nil || strings.Contains(enc, "\n") {
		return
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".cgroup-layout-*")
	if err != nil {
		return
	}
	_, err = tmp.WriteString(strings.Join([]string{hostCacheVersion, key, enc, ids}, "\n") + "\n")
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
}

func readHostCache(path, key string) (*Host, bool) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	lines := strings.Split(string(raw), "\n")
	if len(lines) != 5 || lines[0] != hostCacheVersion || lines[1] != key || lines[4] != "" {
		return nil, false
	}
	l, err := decodeLayout(lines[2])
	if err != nil {
		return nil, false
	}
	if ids, err := mountIDs(l); err != nil || ids != lines[3] {
		return nil, false
	}
	return &Host{layout: l}, true
}

package cgroups

import (
	"bufio"
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
const hostCacheVersion = "berth-cgroup-layout 1"

// mountID is what the cache checks a mount point against.
func mountID(path string) (string, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", err
	}
	return strconv.FormatUint(st.Dev, 10) + ":" + strconv.FormatUint(st.Ino, 10), nil
}

// The cache file: the version, the hierarchy key, the mode, then a line
// per mount point: "v2" or "v1 <controllers>", its mountID, its path
// (last, as it may hold spaces).
func writeHostCache(path, key string, h *Host) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n%s\n%d\n", hostCacheVersion, key, int(h.layout.mode))
	line := func(kind, mountpoint string) bool {
		id, err := mountID(mountpoint)
		if err != nil || strings.ContainsAny(mountpoint, "\n") {
			return false
		}
		fmt.Fprintf(&b, "%s %s %s\n", kind, id, mountpoint)
		return true
	}
	if h.layout.v2 != "" && !line("v2", h.layout.v2) {
		return
	}
	for _, hier := range h.layout.v1 {
		if !line("v1="+strings.Join(hier.controllers, ","), hier.mountpoint) {
			return
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".cgroup-layout-*")
	if err != nil {
		return
	}
	_, err = tmp.WriteString(b.String())
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
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		return sc.Text(), true
	}
	if v, ok := next(); !ok || v != hostCacheVersion {
		return nil, false
	}
	if k, ok := next(); !ok || k != key {
		return nil, false
	}
	m, ok := next()
	mode, err := strconv.Atoi(m)
	if !ok || err != nil || Mode(mode) < Legacy || Mode(mode) > Unified {
		return nil, false
	}
	l := layout{mode: Mode(mode)}
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), " ", 3)
		if len(fields) != 3 {
			return nil, false
		}
		kind, id, mountpoint := fields[0], fields[1], fields[2]
		if now, err := mountID(mountpoint); err != nil || now != id {
			return nil, false
		}
		switch {
		case kind == "v2" && l.v2 == "":
			l.v2 = mountpoint
		case strings.HasPrefix(kind, "v1=") && len(kind) > 3:
			l.v1 = append(l.v1, hierarchy{controllers: strings.Split(kind[3:], ","), mountpoint: mountpoint})
		default:
			return nil, false
		}
	}
	if sc.Err() != nil || (l.v2 == "" && len(l.v1) == 0) {
		return nil, false
	}
	return &Host{layout: l}, true
}

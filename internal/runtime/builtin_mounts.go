package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/runtime/cgroups"
)

// The root filesystem set-up of the built-in runtime's init, in the
// order runc's users are used to: propagation, the spec's mounts, device
// nodes, the console, pivot_root, sysctls, masked and read-only paths,
// then the read-only root. It runs in the init's own mount namespace, so
// nothing here is visible on the host and a failure leaves no mount
// behind: the namespace goes away with the init.

// mountOption is the effect of one mount option on the mount flags.
type mountOption struct {
	clear bool
	flag  uintptr
}

var mountOptions = map[string]mountOption{
	"async":         {true, unix.MS_SYNCHRONOUS},
	"atime":         {true, unix.MS_NOATIME},
	"bind":          {false, unix.MS_BIND},
	"defaults":      {false, 0},
	"dev":           {true, unix.MS_NODEV},
	"diratime":      {true, unix.MS_NODIRATIME},
	"dirsync":       {false, unix.MS_DIRSYNC},
	"exec":          {true, unix.MS_NOEXEC},
	"mand":          {false, unix.MS_MANDLOCK},
	"noatime":       {false, unix.MS_NOATIME},
	"nodev":         {false, unix.MS_NODEV},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"noexec":        {false, unix.MS_NOEXEC},
	"nomand":        {true, unix.MS_MANDLOCK},
	"norelatime":    {true, unix.MS_RELATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
	"nosuid":        {false, unix.MS_NOSUID},
	"rbind":         {false, unix.MS_BIND | unix.MS_REC},
	"relatime":      {false, unix.MS_RELATIME},
	"remount":       {false, unix.MS_REMOUNT},
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"suid":          {true, unix.MS_NOSUID},
	"sync":          {false, unix.MS_SYNCHRONOUS},
}

var propagationOptions = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// parsedMount is a spec mount's options split into mount(2) arguments.
type parsedMount struct {
	flags       uintptr
	propagation []uintptr
	data        string
}

func parseMountOptions(options []string) parsedMount {
	var p parsedMount
	var data []string
	for _, o := range options {
		if opt, ok := mountOptions[o]; ok {
			if opt.clear {
				p.flags &^= opt.flag
			} else {
				p.flags |= opt.flag
			}
			continue
		}
		if f, ok := propagationOptions[o]; ok {
			p.propagation = append(p.propagation, f)
			continue
		}
		data = append(data, o)
	}
	p.data = strings.Join(data, ",")
	return p
}

// mountError says which mount failed, the way a user wrote it.
func mountError(m specs.Mount, err error) error {
	return fmt.Errorf("mounting %q on %q (type %s): %w", m.Source, m.Destination, m.Type, err)
}

// setupMounts mounts the spec's mounts inside rootfs and returns the
// handle of the root that everything else inside it is resolved from.
func setupMounts(spec *specs.Spec, rootfs string, cg *cgroups.Manager, newCgroupNS bool) (*rootDir, error) {
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return nil, fmt.Errorf("making / a slave mount: %w", err)
	}
	// rootfs is berth's own path (not the container's), safe to use as a
	// string; nothing below it is.
	if err := unix.Mount(rootfs, rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return nil, fmt.Errorf("bind-mounting the root filesystem: %w", err)
	}
	if err := checkProcSelfFd(); err != nil {
		return nil, err
	}
	root, err := openRootDir(rootfs)
	if err != nil {
		return nil, err
	}
	for _, m := range spec.Mounts {
		if err := mountOne(root, m, cg, newCgroupNS); err != nil {
			root.close()
			return nil, mountError(m, err)
		}
	}
	return root, nil
}

func mountOne(root *rootDir, m specs.Mount, cg *cgroups.Manager, newCgroupNS bool) error {
	p := parseMountOptions(m.Options)
	var top int // the new mount's root, for remounts and propagation
	var err error
	switch {
	case p.flags&unix.MS_BIND != 0 || m.Type == "bind":
		top, err = mountBind(root, m, p)
	case m.Type == "cgroup":
		top, err = mountCgroups(root, m.Destination, p, cg, newCgroupNS, specMountGuard(m, false))
	default:
		top, err = mountFilesystem(root, m, p)
	}
	if err != nil {
		return err
	}
	defer unix.Close(top)
	for _, f := range p.propagation {
		if err := unix.Mount("", procSelfFd(top), "", f, ""); err != nil {
			return fmt.Errorf("setting propagation: %w", err)
		}
	}
	return nil
}

// mountBind bind-mounts a host path (a volume, a bind, a file berth
// wrote) on the mount's destination, then applies its other flags.
func mountBind(root *rootDir, m specs.Mount, p parsedMount) (int, error) {
	src, err := openSource(m.Source)
	if err != nil {
		return -1, err
	}
	defer src.close()
	top, err := root.bindAt(src, m.Destination, p.flags&unix.MS_REC != 0, specMountGuard(m, src.onProcfs()))
	if err != nil {
		return -1, err
	}
	if rest := p.flags &^ (unix.MS_BIND | unix.MS_REC | unix.MS_REMOUNT); rest != 0 {
		if err := remountBind(procSelfFd(top), rest); err != nil {
			unix.Close(top)
			return -1, err
		}
	}
	return top, nil
}

// mountFilesystem mounts a new instance of a filesystem (tmpfs, proc,
// sysfs, mqueue, devpts...) on the mount's destination.
func mountFilesystem(root *rootDir, m specs.Mount, p parsedMount) (int, error) {
	mp, err := root.openMountPoint(m.Destination, mountOnDir, specMountGuard(m, m.Type == "proc"))
	if err != nil {
		return -1, err
	}
	defer mp.close()
	var want *unix.Statx_t
	err = unix.Mount(m.Source, mp.target(), m.Type, p.flags, p.data)
	if errors.Is(err, unix.EPERM) && m.Type == "sysfs" {
		// Without a network namespace of its own the kernel refuses a
		// new sysfs; show the host's, read-only like it would be.
		var sys *source
		if sys, err = openSource("/sys"); err == nil {
			defer sys.close()
			want = &sys.stx
			err = unix.Mount(sys.path(), mp.target(), "", unix.MS_BIND|unix.MS_REC, "")
		}
	}
	if err != nil {
		return -1, err
	}
	if p.flags&unix.MS_REMOUNT != 0 {
		// A remount changes the mount that is already there.
		return unix.Dup(mp.fd)
	}
	top, err := mp.mounted(want)
	if err != nil {
		return -1, err
	}
	if want != nil {
		if err := remountBind(procSelfFd(top), p.flags); err != nil {
			unix.Close(top)
			return -1, err
		}
	}
	return top, nil
}

// remountBind applies flags (ro, nosuid, ...) to the bind mount at
// target, keeping the flags its source mount has that the kernel would
// not let it drop.
func remountBind(target string, flags uintptr) error {
	var st unix.Statfs_t
	if err := unix.Statfs(target, &st); err == nil {
		flags |= statfsFlags(int64(st.Flags))
	}
	return unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|flags, "")
}

// statfsFlags maps statfs's f_flags to the mount flags a bind remount
// must keep.
func statfsFlags(f int64) uintptr {
	var out uintptr
	for st, ms := range map[int64]uintptr{
		unix.ST_NOSUID:      unix.MS_NOSUID,
		unix.ST_NODEV:       unix.MS_NODEV,
		unix.ST_NOEXEC:      unix.MS_NOEXEC,
		unix.ST_NOATIME:     unix.MS_NOATIME,
		unix.ST_NODIRATIME:  unix.MS_NODIRATIME,
		unix.ST_RELATIME:    unix.MS_RELATIME,
		unix.ST_SYNCHRONOUS: unix.MS_SYNCHRONOUS,
		unix.ST_MANDLOCK:    unix.MS_MANDLOCK,
	} {
		if f&st != 0 {
			out |= ms
		}
	}
	return out
}

// mountCgroups gives the container its own cgroup as /sys/fs/cgroup. On
// v1 (and hybrid) hosts: a tmpfs with the container's cgroup of every
// hierarchy bind-mounted under the hierarchy's name, and links for
// co-mounted controllers (cpu -> cpu,cpuacct), as Docker shows it. On v2:
// a cgroup2 mount, rooted at the container's cgroup by its namespace.
// It returns an fd of the mount now at dest.
func mountCgroups(root *rootDir, dest string, p parsedMount, cg *cgroups.Manager, newCgroupNS bool, guard destGuard) (int, error) {
	v1, v2 := cg.Dirs()
	if len(v1) == 0 {
		if newCgroupNS {
			return root.mountAt("cgroup2", dest, "cgroup2", p.flags, "", guard)
		}
		return bindReadOnlyable(root, v2.Dir, dest, p.flags, guard)
	}
	hier := v1
	if v2.Dir != "" {
		hier = append(hier, v2) // hybrid: the unified hierarchy too
	}
	base := p.flags &^ unix.MS_RDONLY
	top, err := root.mountAt("tmpfs", dest, "tmpfs", base, "mode=755", guard)
	if err != nil {
		return -1, err
	}
	if err := fillCgroupTmpfs(top, hier, p.flags); err != nil {
		unix.Close(top)
		return -1, err
	}
	if p.flags&unix.MS_RDONLY != 0 {
		if err := unix.Mount("", procSelfFd(top), "", unix.MS_REMOUNT|p.flags, "mode=755"); err != nil {
			unix.Close(top)
			return -1, err
		}
	}
	return top, nil
}

// fillCgroupTmpfs binds each hierarchy's cgroup into the fresh tmpfs
// whose root is top.
func fillCgroupTmpfs(top int, hier []cgroups.MountedDir, flags uintptr) error {
	fd, err := unix.Dup(top)
	if err != nil {
		return err
	}
	tmp, err := newRootDir(fd)
	if err != nil {
		return err
	}
	defer tmp.close()
	for _, h := range hier {
		rel, err := filepath.Rel("/sys/fs/cgroup", h.Mountpoint)
		if err != nil || strings.HasPrefix(rel, "..") || rel == "." {
			continue
		}
		if !exists(h.Dir) {
			continue
		}
		sub, err := bindReadOnlyable(tmp, h.Dir, rel, flags, nil)
		if err != nil {
			return fmt.Errorf("%s: %w", h.Dir, err)
		}
		unix.Close(sub)
		if !strings.Contains(rel, ",") {
			continue
		}
		for _, ctrl := range strings.Split(rel, ",") {
			if err := unix.Symlinkat(rel, tmp.fd, ctrl); err != nil && !errors.Is(err, unix.EEXIST) {
				return err
			}
		}
	}
	return nil
}

// bindReadOnlyable bind-mounts the host directory src on dest inside r
// (if guard lets it) with flags applied by a remount, and returns an fd
// of the new mount.
func bindReadOnlyable(r *rootDir, src, dest string, flags uintptr, guard destGuard) (int, error) {
	s, err := openSource(src)
	if err != nil {
		return -1, err
	}
	defer s.close()
	top, err := r.bindAt(s, dest, true, guard)
	if err != nil {
		return -1, err
	}
	if err := remountBind(procSelfFd(top), flags); err != nil {
		unix.Close(top)
		return -1, err
	}
	return top, nil
}

// defaultDevices are the nodes every container's /dev has (Docker's, via
// runc, which adds them to any spec).
var defaultDevices = []specs.LinuxDevice{
	{Path: "/dev/null", Type: "c", Major: 1, Minor: 3},
	{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5},
	{Path: "/dev/full", Type: "c", Major: 1, Minor: 7},
	{Path: "/dev/random", Type: "c", Major: 1, Minor: 8},
	{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9},
	{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0},
}

// devTmpfs reports whether the spec gives the container a fresh /dev
// (device nodes are then berth's to create) rather than a bind mount.
func devTmpfs(spec *specs.Spec) bool {
	for _, m := range spec.Mounts {
		if filepath.Clean(m.Destination) == "/dev" {
			return m.Type == "tmpfs"
		}
	}
	return false
}

// createDevices makes the device nodes and /dev's standard links.
func createDevices(spec *specs.Spec, root *rootDir) error {
	if !devTmpfs(spec) {
		return nil
	}
	old := unix.Umask(0)
	defer unix.Umask(old)
	seen := map[string]bool{}
	devs := append(append([]specs.LinuxDevice{}, spec.Linux.Devices...), defaultDevices...)
	for _, d := range devs {
		if seen[d.Path] {
			continue
		}
		seen[d.Path] = true
		if err := createDevice(root, d); err != nil {
			return fmt.Errorf("creating device %s: %w", d.Path, err)
		}
	}
	links := [][2]string{
		{"/proc/self/fd", "/dev/fd"},
		{"/proc/self/fd/0", "/dev/stdin"},
		{"/proc/self/fd/1", "/dev/stdout"},
		{"/proc/self/fd/2", "/dev/stderr"},
		{"pts/ptmx", "/dev/ptmx"},
	}
	if exists("/proc/kcore") {
		links = append(links, [2]string{"/proc/kcore", "/dev/core"})
	}
	for _, l := range links {
		if err := createLink(root, l[0], l[1]); err != nil {
			return fmt.Errorf("linking %s: %w", l[1], err)
		}
	}
	return nil
}

// createLink makes the symlink dest -> target inside the root.
func createLink(root *rootDir, target, dest string) error {
	dir, name, err := root.lookupParent(dest)
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	if dest == "/dev/ptmx" {
		// The container's ptmx is its devpts instance's, even when the
		// host's device node was copied in (privileged).
		unix.Unlinkat(dir, name, 0)
	}
	if err := unix.Symlinkat(target, dir, name); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	return nil
}

func createDevice(root *rootDir, d specs.LinuxDevice) error {
	var mode uint32
	switch d.Type {
	case "c", "u":
		mode = unix.S_IFCHR
	case "b":
		mode = unix.S_IFBLK
	case "p":
		mode = unix.S_IFIFO
	default:
		return fmt.Errorf("unknown device type %q", d.Type)
	}
	perm := uint32(0o666)
	if d.FileMode != nil {
		perm = uint32(*d.FileMode) & 0o7777
	}
	dir, name, err := root.lookupParent(d.Path)
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	unix.Unlinkat(dir, name, 0)
	if err := unix.Mknodat(dir, name, mode|perm, int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))); err != nil {
		return err
	}
	uid, gid := 0, 0
	if d.UID != nil {
		uid = int(*d.UID)
	}
	if d.GID != nil {
		gid = int(*d.GID)
	}
	return unix.Fchownat(dir, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
}

// pivotRoot makes root the root and detaches the old one. The old root
// is made a slave first so that detaching it cannot unmount anything on
// the host.
func pivotRoot(root *rootDir) error {
	oldRoot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(oldRoot)
	if err := unix.Fchdir(root.fd); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Fchdir(oldRoot); err != nil {
		return err
	}
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return err
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the old root: %w", err)
	}
	return unix.Chdir("/")
}

// maskPaths hides paths: a directory under an empty read-only tmpfs, a
// file under /dev/null. It runs after pivot_root: root is "/".
func maskPaths(root *rootDir, paths []string) error {
	// One /dev/null for every masked file: this is the start path.
	var null *source
	defer func() {
		if null != nil {
			null.close()
		}
	}()
	return eachPath(root, paths, "masking %s", func(mp *mountPoint) error {
		if mp.isDir() {
			if err := unix.Mount("tmpfs", mp.target(), "tmpfs", unix.MS_RDONLY, ""); err != nil {
				return err
			}
			return closeMounted(mp, nil)
		}
		if null == nil {
			var err error
			if null, err = openSource("/dev/null"); err != nil {
				return err
			}
		}
		if err := unix.Mount(null.path(), mp.target(), "", unix.MS_BIND, ""); err != nil {
			return err
		}
		return closeMounted(mp, &null.stx)
	})
}

// readonlyPaths makes paths read-only bind mounts of themselves. It runs
// after pivot_root: root is "/".
func readonlyPaths(root *rootDir, paths []string) error {
	return eachPath(root, paths, "making %s read-only", func(mp *mountPoint) error {
		if err := unix.Mount(mp.target(), mp.target(), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
		top, err := mp.mounted(&mp.stx)
		if err != nil {
			return err
		}
		defer unix.Close(top)
		return remountBind(procSelfFd(top), unix.MS_RDONLY|unix.MS_REC)
	})
}

// eachPath opens each of paths that exists in root (creating nothing)
// and hands it to fn; a path the container lacks is skipped. An error
// is told as whatf with the path.
func eachPath(root *rootDir, paths []string, whatf string, fn func(*mountPoint) error) error {
	for _, p := range paths {
		mp, err := root.openMountPoint(p, mountOnAny, nil)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err == nil {
			err = fn(mp)
			mp.close()
		}
		if err != nil {
			return fmt.Errorf(whatf+": %w", p, err)
		}
	}
	return nil
}

// closeMounted checks that a new mount (of want, when given) is now on
// mp, as mp.mounted does, and lets its fd go.
func closeMounted(mp *mountPoint, want *unix.Statx_t) error {
	top, err := mp.mounted(want)
	if err != nil {
		return err
	}
	return unix.Close(top)
}

// writeSysctls sets the spec's (namespaced) sysctls through /proc/sys.
func writeSysctls(sysctls map[string]string) error {
	for k, v := range sysctls {
		p := filepath.Join("/proc/sys", strings.ReplaceAll(k, ".", "/"))
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			return fmt.Errorf("setting sysctl %s=%s: %w", k, v, err)
		}
	}
	return nil
}

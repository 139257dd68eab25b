package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
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

// setupMounts mounts the spec's mounts inside rootfs.
func setupMounts(spec *specs.Spec, rootfs string, cg *cgroups.Manager, newCgroupNS bool) error {
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("making / a slave mount: %w", err)
	}
	if err := unix.Mount(rootfs, rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind-mounting the root filesystem: %w", err)
	}
	for _, m := range spec.Mounts {
		if err := mountOne(rootfs, m, cg, newCgroupNS); err != nil {
			return mountError(m, err)
		}
	}
	return nil
}

func mountOne(rootfs string, m specs.Mount, cg *cgroups.Manager, newCgroupNS bool) error {
	dest, err := securejoin.SecureJoin(rootfs, m.Destination)
	if err != nil {
		return err
	}
	p := parseMountOptions(m.Options)
	isBind := p.flags&unix.MS_BIND != 0 || m.Type == "bind"
	switch {
	case isBind:
		if err := makeMountPoint(dest, m.Source); err != nil {
			return err
		}
		if err := unix.Mount(m.Source, dest, "", p.flags&(unix.MS_BIND|unix.MS_REC)|unix.MS_BIND, ""); err != nil {
			return err
		}
		if rest := p.flags &^ (unix.MS_BIND | unix.MS_REC | unix.MS_REMOUNT); rest != 0 {
			if err := remountBind(dest, rest); err != nil {
				return err
			}
		}
	case m.Type == "cgroup":
		if err := mountCgroups(dest, p, cg, newCgroupNS); err != nil {
			return err
		}
	default:
		if err := os.MkdirAll(dest, 0o755); err != nil {
			return err
		}
		err := unix.Mount(m.Source, dest, m.Type, p.flags, p.data)
		if errors.Is(err, unix.EPERM) && m.Type == "sysfs" {
			// Without a network namespace of its own the kernel refuses a
			// new sysfs; show the host's, read-only like it would be.
			if err = unix.Mount("/sys", dest, "", unix.MS_BIND|unix.MS_REC, ""); err == nil {
				err = remountBind(dest, p.flags)
			}
		}
		if err != nil {
			return err
		}
	}
	for _, f := range p.propagation {
		if err := unix.Mount("", dest, "", f, ""); err != nil {
			return fmt.Errorf("setting propagation: %w", err)
		}
	}
	return nil
}

// remountBind applies flags (ro, nosuid, ...) to a bind mount, keeping
// the flags its source mount has that the kernel would not let it drop.
func remountBind(dest string, flags uintptr) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dest, &st); err == nil {
		flags |= statfsFlags(int64(st.Flags))
	}
	return unix.Mount("", dest, "", unix.MS_BIND|unix.MS_REMOUNT|flags, "")
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

// makeMountPoint creates dest as a directory, or as an empty file when the
// source is not a directory, as bind mounts need.
func makeMountPoint(dest, source string) error {
	fi, err := os.Stat(source)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return os.MkdirAll(dest, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(dest, os.O_CREATE|os.O_RDONLY|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		if errors.Is(err, unix.EISDIR) {
			return fmt.Errorf("%s is a directory in the image but the source is a file", dest)
		}
		return err
	}
	return f.Close()
}

// mountCgroups gives the container its own cgroup as /sys/fs/cgroup. On
// v1 (and hybrid) hosts: a tmpfs with the container's cgroup of every
// hierarchy bind-mounted under the hierarchy's name, and links for
// co-mounted controllers (cpu -> cpu,cpuacct), as Docker shows it. On v2:
// a cgroup2 mount, rooted at the container's cgroup by its namespace.
func mountCgroups(dest string, p parsedMount, cg *cgroups.Manager, newCgroupNS bool) error {
	v1, v2 := cg.Dirs()
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	if len(v1) == 0 {
		if newCgroupNS {
			return unix.Mount("cgroup2", dest, "cgroup2", p.flags, "")
		}
		if err := unix.Mount(v2.Dir, dest, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return err
		}
		return remountBind(dest, p.flags)
	}
	hier := v1
	if v2.Dir != "" {
		hier = append(hier, v2) // hybrid: the unified hierarchy too
	}
	base := p.flags &^ unix.MS_RDONLY
	if err := unix.Mount("tmpfs", dest, "tmpfs", base, "mode=755"); err != nil {
		return err
	}
	for _, h := range hier {
		rel, err := filepath.Rel("/sys/fs/cgroup", h.Mountpoint)
		if err != nil || strings.HasPrefix(rel, "..") || rel == "." {
			continue
		}
		src := h.Dir
		if !exists(src) {
			continue
		}
		target := filepath.Join(dest, rel)
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(src, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		if err := remountBind(target, p.flags); err != nil {
			return err
		}
		if strings.Contains(rel, ",") {
			for _, ctrl := range strings.Split(rel, ",") {
				link := filepath.Join(dest, ctrl)
				if !exists(link) {
					if err := os.Symlink(rel, link); err != nil {
						return err
					}
				}
			}
		}
	}
	if p.flags&unix.MS_RDONLY != 0 {
		return unix.Mount("", dest, "", unix.MS_REMOUNT|p.flags, "mode=755")
	}
	return nil
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
func createDevices(spec *specs.Spec, rootfs string) error {
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
		if err := createDevice(rootfs, d); err != nil {
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
		dst, err := securejoin.SecureJoin(rootfs, l[1])
		if err != nil {
			return err
		}
		if l[1] == "/dev/ptmx" {
			// The container's ptmx is its devpts instance's, even when the
			// host's device node was copied in (privileged).
			os.Remove(dst)
		}
		if err := os.Symlink(l[0], dst); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("linking %s: %w", l[1], err)
		}
	}
	return nil
}

func createDevice(rootfs string, d specs.LinuxDevice) error {
	dest, err := securejoin.SecureJoin(rootfs, d.Path)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
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
	os.Remove(dest)
	if err := unix.Mknod(dest, mode|perm, int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))); err != nil {
		return err
	}
	uid, gid := 0, 0
	if d.UID != nil {
		uid = int(*d.UID)
	}
	if d.GID != nil {
		gid = int(*d.GID)
	}
	return unix.Lchown(dest, uid, gid)
}

// pivotRoot makes rootfs the root and detaches the old one. The old root
// is made a slave first so that detaching it cannot unmount anything on
// the host.
func pivotRoot(rootfs string) error {
	oldRoot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(oldRoot)
	newRoot, err := unix.Open(rootfs, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(newRoot)
	if err := unix.Fchdir(newRoot); err != nil {
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
// file under /dev/null.
func maskPaths(paths []string) error {
	for _, p := range paths {
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("masking %s: %w", p, err)
		}
		if fi.IsDir() {
			err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, "")
		} else {
			err = unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("masking %s: %w", p, err)
		}
	}
	return nil
}

// readonlyPaths makes paths read-only bind mounts of themselves.
func readonlyPaths(paths []string) error {
	for _, p := range paths {
		if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return fmt.Errorf("making %s read-only: %w", p, err)
		}
		if err := remountBind(p, unix.MS_RDONLY|unix.MS_REC); err != nil {
			return fmt.Errorf("making %s read-only: %w", p, err)
		}
	}
	return nil
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

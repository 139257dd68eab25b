package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/fsutil"
)

// Paths inside a container's root filesystem, and inside the volumes
// mounted into it, belong to whoever can write there: another container
// sharing a volume can turn a directory into a symlink at any moment
// (CVE-2021-30465). So the init never hands such a path to the kernel as
// a string. A destination is looked up from an fd of the root, one
// component at a time with O_NOFOLLOW, symlinks read and followed by the
// lookup itself inside the root, missing directories created on the way
// (lookup); the mount goes onto /proc/self/fd/N of the fd it ends on.
// Before the mount, the fd's path must be the one the lookup walked (a
// directory renamed meanwhile fails the start, as runc's "possibly
// malicious path detected" does); after it, the name is looked up again
// from its parent's fd, and must lead to a new mount (showing the bind's
// source). Remounts and propagation changes go through an fd of the new
// mount.

// rootDir is an O_PATH handle of a directory that paths are resolved in
// as if it were "/": the container's root filesystem, or a tmpfs the init
// has just mounted in it.
type rootDir struct {
	fd int
	// path is the directory's path as the kernel reports it for the fd
	// (readlink of /proc/self/fd/N), what a mount point's fd must read
	// as once its path inside the root is appended.
	path string
}

// errMaliciousPath says that a path inside the container changed while
// the init was working on it.
var errMaliciousPath = errors.New("possibly malicious path detected (the container's files changed while it was being set up); refusing to mount")

// procSelfFd is where the init reaches its own fds by path. The init still
// sees the host's /proc (checked by checkProcSelfFd).
func procSelfFd(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// checkProcSelfFd makes sure /proc/self/fd is procfs's, so that
// /proc/self/fd/N is the fd it names and not something mounted over it.
func checkProcSelfFd() error {
	fd, err := unix.Open("/proc/self/fd", unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening /proc/self/fd: %w", err)
	}
	defer unix.Close(fd)
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return fmt.Errorf("checking /proc/self/fd: %w", err)
	}
	if st.Type != unix.PROC_SUPER_MAGIC {
		return fmt.Errorf("/proc/self/fd is not on procfs (filesystem type %#x): the init cannot address its files safely", st.Type)
	}
	return nil
}

// openRootDir opens path, a trusted path of the host (berth's own), as
// the root to resolve in.
func openRootDir(path string) (*rootDir, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening the root filesystem %s: %w", path, err)
	}
	return newRootDir(fd)
}

// newRootDir takes ownership of fd.
func newRootDir(fd int) (*rootDir, error) {
	p, err := fdPath(fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &rootDir{fd: fd, path: p}, nil
}

func (r *rootDir) close() {
	if r != nil && r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
}

// fdPath is the path the kernel gives for fd.
func fdPath(fd int) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlink(procSelfFd(fd), buf)
		if err != nil {
			return "", fmt.Errorf("reading the path of fd %d: %w", fd, err)
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, 2*len(buf))
	}
}

// maxSymlinks is how many symlinks one lookup follows, as the kernel's.
const maxSymlinks = 40

// lookup resolves p inside the root the way the kernel would if the root
// were "/" (symlinks followed, absolute ones and ".." kept inside the
// root), using fds only: each directory on the way is opened from the one
// before with O_NOFOLLOW, and ".." goes back to the fd held for the
// parent, never through the kernel's "..", so a rename or a symlink swap
// can change where it ends but not take it out of the root. It returns an
// O_PATH fd of the directory that holds p's last component, that
// component's name (not a symlink when it was looked at; "" when p is the
// root itself) and the path inside the root it resolved to. With create,
// missing directories on the way are made (0755, as runc does).
func (r *rootDir) lookup(p string, create bool) (dir int, name, resolved string, err error) {
	return r.lookupGuarded(p, create, nil)
}

// lookupGuarded is lookup that asks guard, when it is given, before it
// creates a missing directory on the way.
func (r *rootDir) lookupGuarded(p string, create bool, guard destGuard) (dir int, name, resolved string, err error) {
	type step struct {
		fd   int
		name string
	}
	stack := []step{{fd: r.fd}} // the root's fd is lent, never closed here
	defer func() {
		for _, s := range stack[1:] {
			if s.fd != dir {
				unix.Close(s.fd)
			}
		}
		if dir == r.fd {
			if dir, err = unix.Dup(r.fd); err != nil {
				dir, name, resolved = -1, "", ""
			}
		}
	}()
	where := func(last string) string {
		var b strings.Builder
		for _, s := range stack[1:] {
			b.WriteString("/" + s.name)
		}
		if last != "" || b.Len() == 0 {
			b.WriteString("/" + last)
		}
		return b.String()
	}
	todo, links := splitPath(p), 0
	follow := func(cur int, part string) error {
		if links++; links > maxSymlinks {
			return &fs.PathError{Op: "lookup", Path: p, Err: unix.ELOOP}
		}
		target, err := fsutil.Readlinkat(cur, part)
		if errors.Is(err, unix.EINVAL) {
			// No longer a symlink: look at it again.
			todo = append([]string{part}, todo...)
			return nil
		}
		if err != nil {
			return &fs.PathError{Op: "readlink", Path: where(part), Err: err}
		}
		if strings.HasPrefix(target, "/") {
			for _, s := range stack[1:] {
				unix.Close(s.fd)
			}
			stack = stack[:1]
		}
		todo = append(splitPath(target), todo...)
		return nil
	}
	for len(todo) > 0 {
		part := todo[0]
		todo = todo[1:]
		cur := stack[len(stack)-1].fd
		if part == ".." {
			if len(stack) > 1 {
				unix.Close(cur)
				stack = stack[:len(stack)-1]
			}
			continue
		}
		var st unix.Stat_t
		if len(todo) == 0 {
			err := unix.Fstatat(cur, part, &st, unix.AT_SYMLINK_NOFOLLOW)
			if err == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				if err := follow(cur, part); err != nil {
					return -1, "", "", err
				}
				continue
			}
			if err != nil && !errors.Is(err, unix.ENOENT) {
				return -1, "", "", &fs.PathError{Op: "lstat", Path: where(part), Err: err}
			}
			return cur, part, where(part), nil
		}
		next, err := openDirAt(cur, part)
		if errors.Is(err, unix.ENOENT) && create && guard != nil {
			if gerr := guard(where(part), false); gerr != nil {
				return -1, "", "", gerr
			}
		}
		if errors.Is(err, unix.ENOENT) && create {
			if err = unix.Mkdirat(cur, part, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
				next, err = openDirAt(cur, part)
			}
		}
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			if unix.Fstatat(cur, part, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				if err := follow(cur, part); err != nil {
					return -1, "", "", err
				}
				continue
			}
		}
		if err != nil {
			return -1, "", "", &fs.PathError{Op: "open", Path: where(part), Err: err}
		}
		stack = append(stack, step{fd: next, name: part})
	}
	// p is the root itself.
	return stack[len(stack)-1].fd, "", where(""), nil
}

func splitPath(p string) []string {
	var parts []string
	for _, s := range strings.Split(p, "/") {
		if s != "" && s != "." {
			parts = append(parts, s)
		}
	}
	return parts
}

// lookupParent resolves p inside the root for creating it: it returns
// the directory to create it in (made if missing) and its name there.
func (r *rootDir) lookupParent(p string) (int, string, error) {
	dir, name, _, err := r.lookup(p, true)
	if err != nil {
		return -1, "", err
	}
	if name == "" {
		unix.Close(dir)
		return -1, "", fmt.Errorf("%s is the container's root directory", p)
	}
	return dir, name, nil
}

// lookupDir resolves p inside the root to a directory and opens it.
func (r *rootDir) lookupDir(p string, create bool) (int, error) {
	dir, name, resolved, err := r.lookup(p, create)
	if err != nil {
		return -1, err
	}
	if name == "" {
		return dir, nil
	}
	defer unix.Close(dir)
	fd, err := openDirAt(dir, name)
	if errors.Is(err, unix.ENOENT) && create {
		if err = unix.Mkdirat(dir, name, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
			fd, err = openDirAt(dir, name)
		}
	}
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: resolved, Err: err}
	}
	return fd, nil
}

func openDirAt(dir int, name string) (int, error) {
	for {
		fd, err := unix.Openat(dir, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// mountPoint is an open mount point inside a root.
type mountPoint struct {
	parent int          // O_PATH fd of the directory that holds it
	fd     int          // O_PATH fd of the mount point itself
	name   string       // its name in parent
	path   string       // its path inside the root, for errors
	stx    unix.Statx_t // before anything is mounted over it
}

func (m *mountPoint) close() {
	unix.Close(m.fd)
	unix.Close(m.parent)
}

// target is where mount(2) is pointed: the fd, never a path to re-resolve.
func (m *mountPoint) target() string { return procSelfFd(m.fd) }

func (m *mountPoint) isDir() bool { return m.stx.Mode&unix.S_IFMT == unix.S_IFDIR }

// mountPointKind is what a mount needs to be mounted on.
type mountPointKind int

const (
	mountOnDir  mountPointKind = iota
	mountOnFile                // anything but a directory: bind of a file
	mountOnAny                 // what is there already (masked paths)
)

// openMountPoint resolves dest in the root, creates what is missing (a
// directory, or an empty file for kind mountOnFile) and opens it. Kind
// mountOnAny creates nothing: a missing dest is an fs.ErrNotExist error.
// guard, when given, judges where dest resolved before anything is
// created or opened there.
func (r *rootDir) openMountPoint(dest string, kind mountPointKind, guard destGuard) (*mountPoint, error) {
	parent, name, p, err := r.lookupGuarded(dest, kind != mountOnAny, guard)
	if err != nil {
		return nil, err
	}
	if name == "" {
		unix.Close(parent)
		return nil, fmt.Errorf("mounting over the container's root directory is not supported")
	}
	if guard != nil {
		// p is checked below to be where the mount point's fd is.
		if err := guard(p, true); err != nil {
			unix.Close(parent)
			return nil, err
		}
	}
	m := &mountPoint{parent: parent, fd: -1, name: name, path: p}
	if err := m.open(kind); err != nil {
		unix.Close(parent)
		return nil, err
	}
	// The fd is the right file; now check it is still where it was meant
	// to be (a directory on its way may have been renamed meanwhile, out
	// of the container's sight).
	got, err := fdPath(m.fd)
	if err == nil && got != filepath.Join(r.path, p) {
		err = fmt.Errorf("%s resolved to %s: %w", dest, got, errMaliciousPath)
	}
	if err != nil {
		m.close()
		return nil, err
	}
	return m, nil
}

// open opens (creating if needed) the last component of a mount point.
func (m *mountPoint) open(kind mountPointKind) error {
	for attempt := 0; ; attempt++ {
		fd, err := unix.Openat(m.parent, m.name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) && attempt == 0 && kind != mountOnAny {
			if err = createMountPoint(m.parent, m.name, kind); err == nil || errors.Is(err, unix.EEXIST) {
				continue
			}
		}
		if err != nil {
			return &fs.PathError{Op: "open", Path: m.path, Err: err}
		}
		if err := statFd(fd, &m.stx); err != nil {
			unix.Close(fd)
			return err
		}
		switch typ := uint32(m.stx.Mode) & unix.S_IFMT; {
		case typ == unix.S_IFLNK:
			err = fmt.Errorf("%s: %w", m.path, errMaliciousPath)
		case kind == mountOnDir && typ != unix.S_IFDIR:
			err = fmt.Errorf("%s is not a directory in the container", m.path)
		case kind == mountOnFile && typ == unix.S_IFDIR:
			err = fmt.Errorf("%s is a directory in the container but the source is a file", m.path)
		}
		if err != nil {
			unix.Close(fd)
			return err
		}
		m.fd = fd
		return nil
	}
}

func createMountPoint(dir int, name string, kind mountPointKind) error {
	if kind == mountOnDir {
		return unix.Mkdirat(dir, name, 0o755)
	}
	fd, err := unix.Openat(dir, name, unix.O_CREAT|unix.O_EXCL|unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// statFd is statx of fd itself: its type, inode and (since Linux 5.8)
// the id of the mount it is on.
func statFd(fd int, stx *unix.Statx_t) error {
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_TYPE|unix.STATX_INO|unix.STATX_MNT_ID, stx); err != nil {
		return fmt.Errorf("statx: %w", err)
	}
	return nil
}

// sameFile says whether a and b are the same inode.
func sameFile(a, b *unix.Statx_t) bool {
	return a.Ino == b.Ino && a.Dev_major == b.Dev_major && a.Dev_minor == b.Dev_minor
}

// mountIDOf is the mount id in stx, 0 where the kernel does not tell.
func mountIDOf(stx *unix.Statx_t) uint64 {
	if stx.Mask&unix.STATX_MNT_ID == 0 {
		return 0
	}
	return stx.Mnt_id
}

// mounted looks the mount point up again by name after something was
// mounted on it and returns an O_PATH fd of the new mount's root, after
// checking that a new mount is what the name now leads to and, when want
// is given (a bind's source), that it shows want's file.
func (m *mountPoint) mounted(want *unix.Statx_t) (int, error) {
	fd, err := unix.Openat(m.parent, m.name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("%s after mounting: %w", m.path, err)
	}
	var stx unix.Statx_t
	err = statFd(fd, &stx)
	if id := mountIDOf(&stx); err == nil && id != 0 && id == mountIDOf(&m.stx) {
		err = fmt.Errorf("%s: nothing was mounted there: %w", m.path, errMaliciousPath)
	}
	if err == nil && want != nil && !sameFile(&stx, want) {
		err = fmt.Errorf("%s does not show the mount's source: %w", m.path, errMaliciousPath)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// source is an open bind mount source: a host path (the caller's choice,
// symlinks followed as docker follows them) or an fd the init holds.
type source struct {
	fd  int
	stx unix.Statx_t
}

func openSource(path string) (*source, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	s := &source{fd: fd}
	if err := statFd(fd, &s.stx); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	return s, nil
}

func (s *source) close() { unix.Close(s.fd) }

// onProcfs says whether the source is a file or directory of a procfs.
func (s *source) onProcfs() bool {
	var st unix.Statfs_t
	return unix.Fstatfs(s.fd, &st) == nil && st.Type == unix.PROC_SUPER_MAGIC
}

func (s *source) path() string { return procSelfFd(s.fd) }
func (s *source) kind() mountPointKind {
	if s.stx.Mode&unix.S_IFMT == unix.S_IFDIR {
		return mountOnDir
	}
	return mountOnFile
}

// bindAt bind-mounts src (recursively with rec) on dest inside r, if
// guard lets it, and returns an fd of the new mount's root, for remounts
// and propagation.
func (r *rootDir) bindAt(src *source, dest string, rec bool, guard destGuard) (int, error) {
	mp, err := r.openMountPoint(dest, src.kind(), guard)
	if err != nil {
		return -1, err
	}
	defer mp.close()
	flags := uintptr(unix.MS_BIND)
	if rec {
		flags |= unix.MS_REC
	}
	if err := unix.Mount(src.path(), mp.target(), "", flags, ""); err != nil {
		return -1, err
	}
	return mp.mounted(&src.stx)
}

// mountAt mounts a new filesystem on dest inside r, if guard lets it,
// and returns an fd of its root.
func (r *rootDir) mountAt(src, dest, fstype string, flags uintptr, data string, guard destGuard) (int, error) {
	mp, err := r.openMountPoint(dest, mountOnDir, guard)
	if err != nil {
		return -1, err
	}
	defer mp.close()
	if err := unix.Mount(src, mp.target(), fstype, flags, data); err != nil {
		return -1, err
	}
	return mp.mounted(nil)
}

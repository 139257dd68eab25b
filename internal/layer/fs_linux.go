package layer

import (
	"errors"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/fsutil"
)

// Everything in this package that touches a tree works relative to file
// descriptors of directories that were opened without following symlinks.
// A path is never handed to the kernel as a string that the kernel could
// resolve through a symlink planted by the tar stream (or by a container
// racing us on its own root file system).

// Overlayfs markers.
const (
	overlayOpaqueXattr   = "trusted.overlay.opaque"
	overlayRedirectXattr = "trusted.overlay.redirect"
	overlayMetacopyXattr = "trusted.overlay.metacopy"
	overlayXattrPrefix   = "trusted.overlay."
	userOverlayPrefix    = "user.overlay."
	userOverlayOpaque    = "user.overlay.opaque"
)

// resolveBeneath are the openat2 resolve flags used everywhere: the path must
// stay beneath the directory, and no symlink of any kind is followed.
const resolveBeneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// beneath opens paths below a root directory without following symlinks.
// It uses openat2(2) (one syscall for a whole path) and falls back, on
// kernels or seccomp profiles without it, to opening one component at a
// time with O_NOFOLLOW. Paths handed to it are clean and relative (see
// cleanName): they contain no "..", "." or empty components.
type beneath struct {
	rootfd    int
	noOpenat2 bool
}

// open opens rel below the root with flags (O_NOFOLLOW and O_CLOEXEC are
// added). A symlink anywhere in rel, including its last component, makes it
// fail (ELOOP or ENOTDIR).
func (b *beneath) open(rel string, flags int) (int, error) {
	flags |= unix.O_NOFOLLOW | unix.O_CLOEXEC
	if rel == "." || rel == "" {
		return unix.Openat(b.rootfd, ".", flags, 0)
	}
	if !b.noOpenat2 {
		how := unix.OpenHow{Flags: uint64(flags), Resolve: resolveBeneath}
		for range 8 {
			fd, err := unix.Openat2(b.rootfd, rel, &how)
			if err == unix.EAGAIN || err == unix.EINTR {
				continue // a concurrent rename elsewhere; retry
			}
			if err == unix.ENOSYS || err == unix.EPERM && isSeccompEPERM(b.rootfd) {
				b.noOpenat2 = true
				break
			}
			return fd, err
		}
	}
	return b.walk(rel, flags)
}

// walk opens rel one component at a time, each relative to the directory
// opened before it and with O_NOFOLLOW, so no symlink is ever followed.
func (b *beneath) walk(rel string, flags int) (int, error) {
	cur := b.rootfd
	for {
		comp, rest, more := strings.Cut(rel, "/")
		f := unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if !more {
			f = flags
		}
		fd, err := openatRetry(cur, comp, f, 0)
		if cur != b.rootfd {
			unix.Close(cur)
		}
		if err != nil {
			return -1, err
		}
		if !more {
			return fd, nil
		}
		cur, rel = fd, rest
	}
}

// isSeccompEPERM tells an EPERM from a seccomp filter that blocks openat2
// (old container runtimes' default profiles did) from a genuine permission
// error, by probing openat2 on "." which cannot be denied otherwise.
func isSeccompEPERM(rootfd int) bool {
	fd, err := unix.Openat2(rootfd, ".", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC})
	if err == nil {
		unix.Close(fd)
		return false
	}
	return err == unix.EPERM || err == unix.ENOSYS
}

func openatRetry(dirfd int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// procFDPath names the file behind fd (typically an O_PATH descriptor) in
// procfs, so that calls with no *at/f* variant (chmod of a device node,
// xattrs of a symlink) reach exactly that inode: the kernel jumps straight
// to it without resolving any path.
func procFDPath(fd int) string {
	return "/proc/self/fd/" + strconv.Itoa(fd)
}

// futimens sets the access and modification times of the file open as fd.
// x/sys's Futimes goes through /proc; utimensat(fd, NULL, ...) does not.
func futimens(fd int, ts *[2]unix.Timespec) error {
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// removeAllAt removes name (a file or a whole tree) in the directory dirfd
// without following symlinks, never entering another mount (a mount point
// is an error) and with a bounded number of descriptors however deep the
// tree is.
func removeAllAt(dirfd int, name string) error {
	return fsutil.RemoveAllAt(dirfd, name)
}

// listXattrs returns the extended attributes of the file open as fd.
func listXattrs(fd int) (map[string][]byte, error) {
	buf := make([]byte, 256)
	var n int
	for {
		var err error
		n, err = unix.Flistxattr(fd, buf)
		if err == unix.ERANGE {
			sz, err := unix.Flistxattr(fd, nil)
			if err != nil {
				return nil, err
			}
			buf = make([]byte, sz+64)
			continue
		}
		if err == unix.ENOTSUP || err == unix.EOPNOTSUPP {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		break
	}
	if n == 0 {
		return nil, nil
	}
	out := make(map[string][]byte)
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		v, err := getXattr(fd, name)
		if errors.Is(err, unix.ENODATA) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out[name] = v
	}
	return out, nil
}

func getXattr(fd int, name string) ([]byte, error) {
	buf := make([]byte, 128)
	for {
		n, err := unix.Fgetxattr(fd, name, buf)
		if err == unix.ERANGE {
			sz, err := unix.Fgetxattr(fd, name, nil)
			if err != nil {
				return nil, err
			}
			buf = make([]byte, sz+16)
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// isWhiteout reports whether st is an overlayfs whiteout: a character
// device with device number 0/0.
func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

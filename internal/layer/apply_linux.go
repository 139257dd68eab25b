package layer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// OCI whiteout names (image-spec layer.md).
const (
	whiteoutPrefix     = ".wh."
	whiteoutMetaPrefix = ".wh..wh."
	whiteoutOpaque     = ".wh..wh..opq"
)

const paxXattrPrefix = "SCHILY.xattr."

// Apply extracts the uncompressed tar stream r into directory root (which
// exists, usually empty, it is a fresh snapshot dir that will be an
// overlayfs lower layer). It returns the layer's size as docker counts
// it: the bytes of regular file content written plus the length of each
// symlink's target (hard links count once, as the file they name).
//
// OCI whiteouts become overlayfs whiteouts: `dir/.wh.name` is written as a
// character device 0/0 at dir/name, and `dir/.wh..wh..opq` sets
// trusted.overlay.opaque=y on dir. Both apply to the layers below only:
// an entry of this same layer is never removed by them.
//
// Security: no entry can create or change anything outside root. Names are
// cleaned lexically ("/a", "./a" and "b/../a" all mean root/a) and refused
// if they leave root. Every parent directory is opened relative to root
// with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS) (or, without openat2,
// one O_NOFOLLOW component at a time), and the entry itself is created with
// *at calls relative to that descriptor, so an entry can never be written
// through a symlink, not even one pointing inside root: a layer tar never
// legitimately holds entries below one of its own symlinks. Symlinks may
// point anywhere; they are only ever resolved inside the container.
// Hardlink targets obey the same rules. Refusals are errdefs.ErrInvalidArgument
// errors naming the entry.
//
// Apply reads r to its end, so that a digest or checksum computed over the
// stream by the caller covers all of it.
func Apply(ctx context.Context, root string, r io.Reader) (int64, error) {
	return apply(ctx, root, r, ApplyOptions{}, false)
}

// ApplyOptions adapts Apply to tars that are not image layers, such as the
// archives of `docker cp`.
type ApplyOptions struct {
	// NoLchown leaves files owned by the caller instead of the uid/gid
	// of the tar entries (docker cp to the host without --archive).
	NoLchown bool
	// LiteralWhiteouts writes `.wh.*` entries as the ordinary files they
	// are outside image layers, instead of converting them to overlayfs
	// whiteouts.
	LiteralWhiteouts bool
	// KeepDirs refuses an entry that is no directory where a directory
	// is, as docker cp does ("cannot overwrite directory"), instead of
	// removing the directory's tree as a layer replacing it does.
	KeepDirs bool
}

// ApplyWithOptions is Apply with options; the security rules are the same.
func ApplyWithOptions(ctx context.Context, root string, r io.Reader, opts ApplyOptions) (int64, error) {
	return apply(ctx, root, r, opts, false)
}

// apply is ApplyWithOptions; noOpenat2 forces the resolution without
// openat2 (for tests of that path).
func apply(ctx context.Context, root string, r io.Reader, opts ApplyOptions, noOpenat2 bool) (int64, error) {
	rootfd, err := openatRetry(unix.AT_FDCWD, root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("layer: open root %s: %w", root, err)
	}
	return applyFD(ctx, rootfd, r, opts, noOpenat2)
}

// ApplyAt is ApplyWithOptions into the directory open as dirfd, which the
// caller keeps (it is not closed). This is the form to use for a directory
// inside a container: the caller resolves it once, inside the container's
// root, and nothing of the extraction ever goes through a path string
// again, so a container that swaps a directory for a symlink meanwhile
// cannot redirect it.
func ApplyAt(ctx context.Context, dirfd int, r io.Reader, opts ApplyOptions) (int64, error) {
	fd, err := unix.Openat(dirfd, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("layer: reopen extraction directory: %w", err)
	}
	return applyFD(ctx, fd, r, opts, false)
}

// applyFD extracts into the directory rootfd, which it closes.
func applyFD(ctx context.Context, rootfd int, r io.Reader, opts ApplyOptions, noOpenat2 bool) (int64, error) {
	a := &applier{
		opts:     opts,
		fs:       beneath{rootfd: rootfd, noOpenat2: noOpenat2},
		cacheFD:  -1,
		buf:      make([]byte, 128<<10),
		dirTimes: make(map[string][2]unix.Timespec),
	}
	defer a.close()

	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return a.written, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && hdr != nil) {
			return a.written, errdefs.InvalidArgument("layer: reading tar: %w", err)
		}
		if err := a.entry(hdr, tr); err != nil {
			return a.written, err
		}
	}
	if err := a.finish(); err != nil {
		return a.written, err
	}
	// Drain the rest (end-of-archive padding): the caller may be hashing
	// or decompressing the stream and must see it end.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return a.written, fmt.Errorf("layer: reading tar: %w", err)
	}
	return a.written, nil
}

type applier struct {
	opts    ApplyOptions
	fs      beneath
	written int64
	buf     []byte

	// One cached parent directory descriptor: tar streams list the
	// entries of a directory together, so most entries hit it. It is
	// dropped whenever a directory is removed, so it never refers to a
	// directory that is no longer at cacheRel.
	cacheRel string
	cacheFD  int

	// Times of directories, set last: creating their children would
	// change them.
	dirTimes map[string][2]unix.Timespec
}

func (a *applier) close() {
	a.dropCache()
	unix.Close(a.fs.rootfd)
}

func (a *applier) dropCache() {
	if a.cacheFD >= 0 {
		unix.Close(a.cacheFD)
	}
	a.cacheFD, a.cacheRel = -1, ""
}

// cleanName turns a tar entry name into a clean path relative to root:
// leading slashes and "./" are dropped, "." and ".." are resolved
// lexically. It refuses a name that leaves root.
func cleanName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", errors.New("contains a NUL byte")
	}
	c := path.Clean(strings.TrimLeft(name, "/"))
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", errors.New("path escapes the root directory")
	}
	return c, nil
}

func invalid(entry string, format string, args ...any) error {
	return errdefs.InvalidArgument("layer: entry %q: %s", entry, fmt.Sprintf(format, args...))
}

func ioErr(entry, op string, err error) error {
	return fmt.Errorf("layer: entry %q: %s: %w", entry, op, err)
}

func (a *applier) entry(hdr *tar.Header, r io.Reader) error {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return invalid(hdr.Name, "%v", err)
	}
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}

	if strings.HasPrefix(base, whiteoutPrefix) && !a.opts.LiteralWhiteouts {
		switch {
		case base == whiteoutOpaque:
			return a.opaque(hdr.Name, dir)
		case strings.HasPrefix(base, whiteoutMetaPrefix):
			return nil // other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): not content
		}
		target := base[len(whiteoutPrefix):]
		if target == "" || target == "." || target == ".." {
			return invalid(hdr.Name, "invalid whiteout name")
		}
		return a.whiteout(hdr.Name, dir, target)
	}

	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil // PAX global header: metadata only
	case tar.TypeDir, tar.TypeReg, tar.TypeGNUSparse, tar.TypeSymlink, tar.TypeLink,
		tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	default:
		return invalid(hdr.Name, "unsupported tar entry type %q", hdr.Typeflag)
	}

	if name == "." {
		if hdr.Typeflag != tar.TypeDir {
			return invalid(hdr.Name, "only a directory can replace the root directory")
		}
		return a.dirMeta(hdr, a.fs.rootfd, ".")
	}

	var linkDir, linkBase string
	if hdr.Typeflag == tar.TypeLink {
		// Check the target before touching anything.
		target, err := cleanName(hdr.Linkname)
		if err != nil {
			return invalid(hdr.Name, "hardlink target %q: %v", hdr.Linkname, err)
		}
		if target == "." {
			return invalid(hdr.Name, "hardlink to the root directory")
		}
		if target == name {
			return invalid(hdr.Name, "hardlink to itself")
		}
		linkDir, linkBase = path.Split(target)
		linkDir = strings.TrimSuffix(linkDir, "/")
	}

	if hdr.Typeflag == tar.TypeSymlink {
		if hdr.Linkname == "" {
			return invalid(hdr.Name, "symlink with an empty target")
		}
		if strings.IndexByte(hdr.Linkname, 0) >= 0 {
			return invalid(hdr.Name, "symlink target contains a NUL byte")
		}
	}

	pfd, err := a.parent(hdr.Name, dir)
	if err != nil {
		return err
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		existingDir, opaque, err := a.create(hdr.Name, pfd, base, name, true, "mkdir", func() error {
			return unix.Mkdirat(pfd, base, 0o700)
		})
		if err != nil {
			return err
		}
		fd, err := openatRetry(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return ioErr(hdr.Name, "open directory", err)
		}
		defer unix.Close(fd)
		if opaque && !existingDir {
			if err := unix.Fsetxattr(fd, overlayOpaqueXattr, []byte("y"), 0); err != nil {
				return ioErr(hdr.Name, "set opaque xattr", err)
			}
		}
		return a.dirMeta(hdr, fd, name)

	case tar.TypeReg, tar.TypeGNUSparse:
		var fd int
		_, _, err := a.create(hdr.Name, pfd, base, name, false, "create", func() (err error) {
			fd, err = openatRetry(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
			return err
		})
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return a.regular(hdr, r, fd)

	case tar.TypeSymlink:
		if _, _, err := a.create(hdr.Name, pfd, base, name, false, "symlink", func() error {
			return unix.Symlinkat(hdr.Linkname, pfd, base)
		}); err != nil {
			return err
		}
		// docker's layer size counts a symlink's own size: the length
		// of its target.
		a.written += int64(len(hdr.Linkname))
		return a.nodeMeta(hdr, pfd, base, false)

	case tar.TypeLink:
		return a.hardlink(hdr, pfd, base, name, linkDir, linkBase)

	default: // char, block, fifo
		mode := uint32(hdr.Mode & 0o7777)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode |= unix.S_IFCHR
		case tar.TypeBlock:
			mode |= unix.S_IFBLK
		default:
			mode |= unix.S_IFIFO
		}
		dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
		if _, _, err := a.create(hdr.Name, pfd, base, name, false, "mknod", func() error {
			return unix.Mknodat(pfd, base, mode, dev)
		}); err != nil {
			return err
		}
		return a.nodeMeta(hdr, pfd, base, true)
	}
}

// create runs mk to create base in pfd. If something is in the way
// (EEXIST) it is cleared and mk runs again, unless a directory is created
// over a directory, which is kept (existingDir). Trying first and clearing
// on EEXIST saves a stat per entry in the usual case of a fresh tree.
func (a *applier) create(entry string, pfd int, base, rel string, isDir bool, op string, mk func() error) (existingDir, opaque bool, err error) {
	err = mk()
	if err == unix.EEXIST {
		existingDir, opaque, err = a.clear(entry, pfd, base, rel, isDir)
		if err != nil || existingDir {
			return existingDir, opaque, err
		}
		err = mk()
	}
	if err != nil {
		return false, false, ioErr(entry, op, err)
	}
	return existingDir, opaque, nil
}

// parent returns a descriptor of directory dir (relative to root), creating
// missing directories (mode 0755). The descriptor belongs to the cache and
// must not be closed by the caller.
func (a *applier) parent(entry, dir string) (int, error) {
	if dir == "." {
		return a.fs.rootfd, nil
	}
	if a.cacheFD >= 0 && a.cacheRel == dir {
		return a.cacheFD, nil
	}
	fd, err := a.fs.open(dir, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		// Missing, a symlink, or not a directory: find out which,
		// component by component, creating what is missing.
		fd, err = a.mkdirAll(entry, dir)
		if err != nil {
			return -1, err
		}
	}
	a.dropCache()
	a.cacheRel, a.cacheFD = dir, fd
	return fd, nil
}

// mkdirAll opens directory dir below root one component at a time,
// creating missing ones. A whiteout in the way (left by an earlier entry of
// this layer) is replaced by an opaque directory: the lower layers' content
// stays deleted. A symlink or other non-directory in the way is an error.
func (a *applier) mkdirAll(entry, dir string) (int, error) {
	cur := a.fs.rootfd
	closeCur := func() {
		if cur != a.fs.rootfd {
			unix.Close(cur)
		}
	}
	done := ""
	rest := dir
	for rest != "" {
		comp, r, _ := strings.Cut(rest, "/")
		rest = r
		done = path.Join(done, comp)
		fd, err := openatRetry(cur, comp, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			fd, err = a.makeDir(entry, cur, comp, done, err)
		}
		closeCur()
		if err != nil {
			return -1, err
		}
		cur = fd
	}
	return cur, nil
}

// makeDir creates directory name in dirfd for mkdirAll after opening it
// failed with openErr, and returns it opened.
func (a *applier) makeDir(entry string, dirfd int, name, rel string, openErr error) (int, error) {
	var st unix.Stat_t
	err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	opaque := false
	switch {
	case err == unix.ENOENT:
	case err != nil:
		return -1, ioErr(entry, "stat parent "+rel, err)
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return -1, invalid(entry, "parent %q is a symlink; refusing to write through it", rel)
	case isWhiteout(&st):
		if err := unix.Unlinkat(dirfd, name, 0); err != nil {
			return -1, ioErr(entry, "remove whiteout "+rel, err)
		}
		opaque = true
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return -1, invalid(entry, "parent %q is not a directory", rel)
	default:
		return -1, ioErr(entry, "open parent "+rel, openErr)
	}
	if err := unix.Mkdirat(dirfd, name, 0o755); err != nil {
		return -1, ioErr(entry, "mkdir "+rel, err)
	}
	fd, err := openatRetry(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, ioErr(entry, "open "+rel, err)
	}
	// Mode 0755 regardless of the umask.
	if err := unix.Fchmod(fd, 0o755); err != nil {
		unix.Close(fd)
		return -1, ioErr(entry, "chmod "+rel, err)
	}
	if opaque {
		if err := unix.Fsetxattr(fd, overlayOpaqueXattr, []byte("y"), 0); err != nil {
			unix.Close(fd)
			return -1, ioErr(entry, "set opaque xattr on "+rel, err)
		}
	}
	return fd, nil
}

// clear makes room for a new entry named base in pfd. A non-directory
// replaces anything; a directory over a directory keeps it (existingDir).
// A directory replacing a whiteout is made opaque, so the lower layers'
// content the whiteout deleted stays deleted.
func (a *applier) clear(entry string, pfd int, base, rel string, isDir bool) (existingDir, opaque bool, err error) {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return false, false, nil
		}
		return false, false, ioErr(entry, "stat", err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if isDir {
			return true, false, nil
		}
		if a.opts.KeepDirs {
			return false, false, invalid(entry, "cannot overwrite directory with non-directory; remove the directory first")
		}
		// The cached parent may lie inside the tree being removed.
		a.dropCache()
		delete(a.dirTimes, rel)
		if err := removeAllAt(pfd, base); err != nil {
			return false, false, ioErr(entry, "remove existing directory", err)
		}
		return false, false, nil
	}
	if err := unix.Unlinkat(pfd, base, 0); err != nil {
		return false, false, ioErr(entry, "remove existing file", err)
	}
	return false, isDir && isWhiteout(&st), nil
}

// regular writes the content and metadata of a regular file just created
// as fd.
func (a *applier) regular(hdr *tar.Header, r io.Reader, fd int) error {
	n, err := copyToFD(fd, r, a.buf)
	a.written += n
	if err != nil {
		return ioErr(hdr.Name, "write", err)
	}
	// chown before chmod (chown clears setuid/setgid) and before the
	// xattrs (chown clears security.capability).
	if err := a.fchown(fd, hdr); err != nil {
		return ioErr(hdr.Name, "chown", err)
	}
	if err := unix.Fchmod(fd, uint32(hdr.Mode&0o7777)); err != nil {
		return ioErr(hdr.Name, "chmod", err)
	}
	if err := setXattrs(hdr, func(k string, v []byte) error { return unix.Fsetxattr(fd, k, v, 0) }); err != nil {
		return err
	}
	ts := tarTimes(hdr)
	if err := futimens(fd, &ts); err != nil {
		return ioErr(hdr.Name, "set times", err)
	}
	return nil
}

// dirMeta sets the owner, mode and xattrs of the directory open as fd and
// records its times for finish.
func (a *applier) dirMeta(hdr *tar.Header, fd int, rel string) error {
	if rel == "." {
		dfd, err := openatRetry(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return ioErr(hdr.Name, "open root", err)
		}
		defer unix.Close(dfd)
		fd = dfd
	}
	if err := a.fchown(fd, hdr); err != nil {
		return ioErr(hdr.Name, "chown", err)
	}
	if err := unix.Fchmod(fd, uint32(hdr.Mode&0o7777)); err != nil {
		return ioErr(hdr.Name, "chmod", err)
	}
	if err := setXattrs(hdr, func(k string, v []byte) error { return unix.Fsetxattr(fd, k, v, 0) }); err != nil {
		return err
	}
	a.dirTimes[rel] = tarTimes(hdr)
	return nil
}

// nodeMeta sets the metadata of a just created symlink or special file
// base in pfd. Ownership and times use AT_SYMLINK_NOFOLLOW on the name;
// mode and xattrs go through an O_PATH descriptor of the node (via procfs),
// so they can never land on a file a symlink points to.
func (a *applier) nodeMeta(hdr *tar.Header, pfd int, base string, chmod bool) error {
	if !a.opts.NoLchown {
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return ioErr(hdr.Name, "chown", err)
		}
	}
	if chmod || hasXattrs(hdr) {
		fd, err := openatRetry(pfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return ioErr(hdr.Name, "open", err)
		}
		defer unix.Close(fd)
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return ioErr(hdr.Name, "stat", err)
		}
		isLink := st.Mode&unix.S_IFMT == unix.S_IFLNK
		if isLink != (hdr.Typeflag == tar.TypeSymlink) {
			return ioErr(hdr.Name, "set metadata", errors.New("file changed type while being extracted"))
		}
		p := procFDPath(fd)
		if chmod {
			if err := unix.Chmod(p, uint32(hdr.Mode&0o7777)); err != nil {
				return ioErr(hdr.Name, "chmod", err)
			}
		}
		if err := setXattrs(hdr, func(k string, v []byte) error { return unix.Setxattr(p, k, v, 0) }); err != nil {
			return err
		}
	}
	ts := tarTimes(hdr)
	if err := unix.UtimesNanoAt(pfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return ioErr(hdr.Name, "set times", err)
	}
	return nil
}

// hardlink links base in pfd to linkDir/linkBase, which must already exist
// below root and be reachable without following a symlink.
func (a *applier) hardlink(hdr *tar.Header, pfd int, base, rel, linkDir, linkBase string) error {
	tfd := a.fs.rootfd
	if linkDir != "" {
		fd, err := a.fs.open(linkDir, unix.O_PATH|unix.O_DIRECTORY)
		if err != nil {
			if err == unix.ENOENT {
				return invalid(hdr.Name, "hardlink target %q does not exist", hdr.Linkname)
			}
			if err == unix.ELOOP || err == unix.ENOTDIR {
				return invalid(hdr.Name, "hardlink target %q: a parent is a symlink or not a directory", hdr.Linkname)
			}
			return ioErr(hdr.Name, "open hardlink target directory", err)
		}
		defer unix.Close(fd)
		tfd = fd
	}
	var st unix.Stat_t
	if err := unix.Fstatat(tfd, linkBase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return invalid(hdr.Name, "hardlink target %q does not exist", hdr.Linkname)
		}
		return ioErr(hdr.Name, "stat hardlink target", err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return invalid(hdr.Name, "hardlink target %q is a directory", hdr.Linkname)
	}
	// flags 0: a symlink target is linked itself, never followed.
	_, _, err := a.create(hdr.Name, pfd, base, rel, false, "link", func() error {
		return unix.Linkat(tfd, linkBase, pfd, base, 0)
	})
	return err
}

// opaque marks directory dir (relative to root) opaque.
func (a *applier) opaque(entry, dir string) error {
	pfd, err := a.parent(entry, dir)
	if err != nil {
		return err
	}
	fd, err := openatRetry(pfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return ioErr(entry, "open directory", err)
	}
	defer unix.Close(fd)
	if err := unix.Fsetxattr(fd, overlayOpaqueXattr, []byte("y"), 0); err != nil {
		return ioErr(entry, "set opaque xattr", err)
	}
	return nil
}

// whiteout records the deletion of dir/target from the lower layers. If
// this layer already holds dir/target, that entry stays (whiteouts apply
// to lower layers only); a directory is made opaque so that the lower
// layers' content under it stays deleted.
func (a *applier) whiteout(entry, dir, target string) error {
	pfd, err := a.parent(entry, dir)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	err = unix.Fstatat(pfd, target, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == unix.ENOENT:
		if err := unix.Mknodat(pfd, target, unix.S_IFCHR, 0); err != nil {
			return ioErr(entry, "create whiteout", err)
		}
		return nil
	case err != nil:
		return ioErr(entry, "stat whiteout target", err)
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		fd, err := openatRetry(pfd, target, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return ioErr(entry, "open directory", err)
		}
		defer unix.Close(fd)
		if err := unix.Fsetxattr(fd, overlayOpaqueXattr, []byte("y"), 0); err != nil {
			return ioErr(entry, "set opaque xattr", err)
		}
	}
	return nil
}

// finish sets the times of directories, now that nothing more is created
// in them. A directory that was replaced later in the stream is skipped.
func (a *applier) finish() error {
	a.dropCache()
	rels := make([]string, 0, len(a.dirTimes))
	for rel := range a.dirTimes {
		rels = append(rels, rel)
	}
	sort.Strings(rels)
	for _, rel := range rels {
		ts := a.dirTimes[rel]
		fd, err := a.fs.open(rel, unix.O_RDONLY|unix.O_DIRECTORY)
		if err == unix.ENOENT || err == unix.ENOTDIR || err == unix.ELOOP {
			continue
		}
		if err != nil {
			return ioErr(rel, "open directory", err)
		}
		err = futimens(fd, &ts)
		unix.Close(fd)
		if err != nil {
			return ioErr(rel, "set times", err)
		}
	}
	return nil
}

func (a *applier) fchown(fd int, hdr *tar.Header) error {
	if a.opts.NoLchown {
		return nil
	}
	return unix.Fchown(fd, hdr.Uid, hdr.Gid)
}

func hasXattrs(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, paxXattrPrefix) {
			return true
		}
	}
	return false
}

// setXattrs applies the SCHILY.xattr.* PAX records of hdr with set, in
// name order. Overlayfs' own trusted.overlay.* attributes are ignored: a
// layer expresses deletions with OCI whiteouts, and must not smuggle in
// overlay redirects or metacopy markers.
func setXattrs(hdr *tar.Header, set func(string, []byte) error) error {
	var names []string
	for k := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, paxXattrPrefix); ok && name != "" &&
			!strings.HasPrefix(name, overlayXattrPrefix) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		if err := set(name, []byte(hdr.PAXRecords[paxXattrPrefix+name])); err != nil {
			return ioErr(hdr.Name, "set xattr "+name, err)
		}
	}
	return nil
}

// tarTimes returns the access and modification times of hdr; a missing
// access time is the modification time.
func tarTimes(hdr *tar.Header) [2]unix.Timespec {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	return [2]unix.Timespec{timespec(atime), timespec(hdr.ModTime)}
}

func timespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		return unix.Timespec{}
	}
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

// copyToFD copies r into fd through buf, filled before each write: a
// decompressor yields at most its window (32 KiB for gzip) per read, and
// a write per read would be four times the system calls.
func copyToFD(fd int, r io.Reader, buf []byte) (int64, error) {
	var total int64
	for {
		n, rerr := io.ReadFull(r, buf)
		if rerr == io.ErrUnexpectedEOF {
			rerr = io.EOF
		}
		for off := 0; off < n; {
			m, err := unix.Write(fd, buf[off:n])
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return total, err
			}
			off += m
			total += int64(m)
		}
		if rerr == io.EOF {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

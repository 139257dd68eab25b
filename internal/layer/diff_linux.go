package layer

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/fsutil"
)

// Diff writes to w a tar of the changes in an overlayfs upper dir `upper`
// (relative to the lower dirs `lowers`, topmost first), in OCI layer
// format: overlay whiteouts (char device 0/0) become `.wh.<name>` entries,
// opaque dirs (xattr trusted.overlay.opaque=y) get a `.wh..wh..opq` entry.
// Deterministic order (sorted by path).
//
// The upper dir alone describes the change, except for files copied up
// with overlayfs' metacopy feature, whose data is read from the lowers.
// Directories renamed with redirect_dir cannot be expressed as a layer
// change without walking the lowers' whole tree and are refused
// (errdefs.ErrNotImplemented); mount the overlay with redirect_dir=off, as
// docker does. Files that share an inode within upper are written as tar
// hardlinks. The output is reproducible: PAX format, modification times
// truncated to seconds, no access/change times, no user/group names, and
// no host-specific xattrs (security.selinux, overlayfs' own).
func Diff(ctx context.Context, w io.Writer, upper string, lowers []string) error {
	fd, err := openatRetry(unix.AT_FDCWD, upper, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("layer: diff: open upper dir %s: %w", upper, err)
	}
	t := newTarWalker(ctx, w, true)
	t.lowers = lowers
	defer t.close()

	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return fmt.Errorf("layer: diff: stat %s: %w", upper, err)
	}
	xs, err := listXattrs(fd)
	if err != nil {
		unix.Close(fd)
		return fmt.Errorf("layer: diff: xattrs of %s: %w", upper, err)
	}
	if isOpaque(xs) {
		if err := t.whiteoutHeader(whiteoutOpaque, &st); err != nil {
			unix.Close(fd)
			return err
		}
	}
	if err := t.walkRoot(fd, ""); err != nil {
		return err
	}
	return t.finish()
}

// WriteTar writes a tar of the whole tree at root (used by `export` of a
// mounted container rootfs and by `cp`). Deterministic order. Entry names
// are relative to root ("etc/", "etc/passwd"); the root directory itself
// gets no entry. If root is not a directory, the tar holds that one file
// under its base name.
//
// The tree is read through descriptors opened without following symlinks,
// so a running container that swaps a directory for a symlink while it is
// read cannot make WriteTar read anything outside root. Files that vanish
// meanwhile are skipped.
func WriteTar(ctx context.Context, w io.Writer, root string) error {
	t := newTarWalker(ctx, w, false)
	defer t.close()
	fd, err := openatRetry(unix.AT_FDCWD, root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == unix.ENOTDIR {
		return t.single(root)
	}
	if err != nil {
		return fmt.Errorf("layer: open %s: %w", root, err)
	}
	if err := t.walkRoot(fd, ""); err != nil {
		return err
	}
	return t.finish()
}

type devIno struct{ dev, ino uint64 }

type tarWalker struct {
	ctx     context.Context
	tw      *tar.Writer
	overlay bool // Diff: convert whiteouts and opaque dirs
	lowers  []string
	lowerFS []*beneath // opened on first use
	links   map[devIno]string
	buf     []byte
	// rootOwner writes every entry as owned by uid/gid 0 (`cp` without -a).
	rootOwner bool
	// noKernelFS writes directories of kernel filesystems (proc, sysfs...)
	// without their contents.
	noKernelFS bool
	// stack is the path of directories being walked.
	stack dirStack
}

func newTarWalker(ctx context.Context, w io.Writer, overlay bool) *tarWalker {
	return &tarWalker{
		ctx:     ctx,
		tw:      tar.NewWriter(w),
		overlay: overlay,
		links:   make(map[devIno]string),
		buf:     make([]byte, 128<<10),
	}
}

func (t *tarWalker) close() {
	t.stack.closeAll()
	for _, b := range t.lowerFS {
		if b != nil {
			unix.Close(b.rootfd)
		}
	}
}

func (t *tarWalker) finish() error {
	if err := t.tw.Close(); err != nil {
		return fmt.Errorf("layer: writing tar: %w", err)
	}
	return nil
}

// single writes root, which is not a directory, as the only entry.
func (t *tarWalker) single(root string) error {
	dir, base := filepath.Split(filepath.Clean(root))
	if dir == "" {
		dir = "."
	}
	pfd, err := openatRetry(unix.AT_FDCWD, dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("layer: open %s: %w", dir, err)
	}
	defer unix.Close(pfd)
	c := child{name: base, out: base}
	if err := unix.Fstatat(pfd, base, &c.st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("layer: stat %s: %w", root, err)
	}
	if err := t.entry(pfd, "", c); err != nil {
		return err
	}
	return t.finish()
}

type child struct {
	name string // name in the directory
	out  string // name in the tar (differs for whiteouts)
	st   unix.Stat_t
}

// walkRoot walks the directory open as fd (named rel in the tar, "" for
// the root); it takes fd.
func (t *tarWalker) walkRoot(fd int, rel string) error {
	lv, err := t.stack.push(fd)
	if err != nil {
		return fmt.Errorf("layer: stat %q: %w", rel, err)
	}
	err = t.walkDir(lv, rel)
	if perr := t.stack.pop(); err == nil {
		err = perr
	}
	return err
}

// walkDir writes the entries of the directory lv (named rel in the tar)
// in name order, recursively. lv's descriptor may be closed and reopened
// by the walk below it: it is read anew for every entry.
func (t *tarWalker) walkDir(lv *level, rel string) error {
	names, err := readDirNames(lv.fd)
	if err != nil {
		return fmt.Errorf("layer: read directory %q: %w", rel, err)
	}
	children := make([]child, 0, len(names))
	for _, name := range names {
		c := child{name: name, out: name}
		if err := unix.Fstatat(lv.fd, name, &c.st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				continue
			}
			return fmt.Errorf("layer: stat %q: %w", path.Join(rel, name), err)
		}
		if t.overlay && isWhiteout(&c.st) {
			c.out = whiteoutPrefix + name
		}
		children = append(children, c)
	}
	sort.Slice(children, func(i, j int) bool { return children[i].out < children[j].out })
	for _, c := range children {
		if err := t.entry(lv.fd, rel, c); err != nil {
			return err
		}
	}
	return nil
}

func readDirNames(fd int) ([]string, error) {
	buf := make([]byte, 32<<10)
	var names []string
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

func join(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}

// entry writes child c of the directory dirfd (named rel in the tar).
func (t *tarWalker) entry(dirfd int, rel string, c child) error {
	if err := t.ctx.Err(); err != nil {
		return err
	}
	name := join(rel, c.name)
	if len(name) > maxPathLen {
		return tooDeep("layer: archive", name, t.stack.depth()+1)
	}
	switch c.st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		fd, err := openatRetry(dirfd, c.name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return skipVanished(name, "open", err)
		}
		if err := t.dir(fd, name); err != nil {
			unix.Close(fd)
			return err
		}
		if t.noKernelFS && isKernelFS(fd) {
			unix.Close(fd)
			return nil
		}
		return t.walkRoot(fd, name)

	case unix.S_IFREG:
		return t.regular(dirfd, name, c)

	case unix.S_IFLNK:
		target, err := fsutil.Readlinkat(dirfd, c.name)
		if err != nil {
			return skipVanished(name, "readlink", err)
		}
		hdr := t.header(name, tar.TypeSymlink, &c.st, nil)
		hdr.Linkname = target
		return t.write(hdr)

	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
		if t.overlay && isWhiteout(&c.st) {
			return t.whiteoutHeader(join(rel, c.out), &c.st)
		}
		typ := byte(tar.TypeFifo)
		switch c.st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			typ = tar.TypeChar
		case unix.S_IFBLK:
			typ = tar.TypeBlock
		}
		hdr := t.header(name, typ, &c.st, nil)
		if typ != tar.TypeFifo {
			hdr.Devmajor = int64(unix.Major(c.st.Rdev))
			hdr.Devminor = int64(unix.Minor(c.st.Rdev))
		}
		return t.write(hdr)
	}
	return nil // sockets cannot be archived (docker skips them too)
}

// dir writes the header of the directory open as fd, and its opaque marker.
func (t *tarWalker) dir(fd int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("layer: stat %q: %w", name, err)
	}
	xs, err := listXattrs(fd)
	if err != nil {
		return fmt.Errorf("layer: xattrs of %q: %w", name, err)
	}
	if t.overlay {
		if _, ok := xs[overlayRedirectXattr]; ok {
			return errdefs.NotImplemented("layer: diff: directory %q was renamed with overlayfs redirect_dir; mount the overlay with redirect_dir=off", name)
		}
	}
	if err := t.write(t.header(name+"/", tar.TypeDir, &st, xs)); err != nil {
		return err
	}
	if t.overlay && isOpaque(xs) {
		return t.whiteoutHeader(name+"/"+whiteoutOpaque, &st)
	}
	return nil
}

// regular writes a regular file, or a hardlink to one written before.
func (t *tarWalker) regular(dirfd int, name string, c child) error {
	if c.st.Nlink > 1 {
		if first, ok := t.links[devIno{c.st.Dev, c.st.Ino}]; ok {
			hdr := t.header(name, tar.TypeLink, &c.st, nil)
			hdr.Linkname = first
			return t.write(hdr)
		}
	}
	// A running container may have swapped the file for a device node or
	// a fifo since the directory was listed, and opening one can have
	// effects (a watchdog arms, a tape rewinds): the name is opened
	// O_PATH, which opens nothing, and only a regular file is then
	// opened for reading, through that very descriptor.
	pfd, err := openatRetry(dirfd, c.name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return skipVanished(name, "open", err)
	}
	fd, notReg, err := reopenRegular(pfd)
	unix.Close(pfd)
	if notReg {
		return nil // swapped for something else meanwhile
	}
	if err != nil {
		// The descriptor holds the inode: this is no vanished file
		// but, say, no procfs to reopen it through.
		return fmt.Errorf("layer: reopen %q: %w", name, err)
	}
	return t.regularFD(fd, name)
}

// regularFD writes the regular file open (for reading) as fd, which it
// closes; anything else than a regular file is skipped.
func (t *tarWalker) regularFD(fd int, name string) error {
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("layer: stat %q: %w", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil // swapped for something else meanwhile
	}
	if st.Nlink > 1 {
		key := devIno{st.Dev, st.Ino}
		if first, ok := t.links[key]; ok {
			hdr := t.header(name, tar.TypeLink, &st, nil)
			hdr.Linkname = first
			return t.write(hdr)
		}
		t.links[key] = name
	}
	xs, err := listXattrs(fd)
	if err != nil {
		return fmt.Errorf("layer: xattrs of %q: %w", name, err)
	}
	var data io.Reader = f
	size := st.Size
	if _, ok := xs[overlayMetacopyXattr]; ok && t.overlay {
		lf, lsize, err := t.lowerData(name, xs)
		if err != nil {
			return err
		}
		defer lf.Close()
		data, size = lf, lsize
	}
	hdr := t.header(name, tar.TypeReg, &st, xs)
	hdr.Size = size
	if err := t.write(hdr); err != nil {
		return err
	}
	n, err := io.CopyBuffer(t.tw, io.LimitReader(data, size), t.buf)
	if err != nil {
		return fmt.Errorf("layer: writing %q: %w", name, err)
	}
	// The file shrank while being read: pad to the size in the header.
	for n < size {
		clear(t.buf)
		m, err := t.tw.Write(t.buf[:min(int64(len(t.buf)), size-n)])
		if err != nil {
			return fmt.Errorf("layer: writing %q: %w", name, err)
		}
		n += int64(m)
	}
	return nil
}

// lowerData opens the data of a metacopy upper file: the same path, or the
// path in its trusted.overlay.redirect xattr, in the topmost lower holding
// a regular file there.
func (t *tarWalker) lowerData(name string, xs map[string][]byte) (*os.File, int64, error) {
	src := name
	if r, ok := xs[overlayRedirectXattr]; ok {
		if rs := string(r); strings.HasPrefix(rs, "/") {
			src = rs
		} else {
			src = path.Join(path.Dir(name), rs)
		}
	}
	src, err := cleanName(src)
	if err != nil || src == "." {
		return nil, 0, fmt.Errorf("layer: diff: metacopy file %q: bad redirect %q", name, xs[overlayRedirectXattr])
	}
	if t.lowerFS == nil {
		t.lowerFS = make([]*beneath, len(t.lowers))
	}
	for i, l := range t.lowers {
		if t.lowerFS[i] == nil {
			fd, err := openatRetry(unix.AT_FDCWD, l, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				return nil, 0, fmt.Errorf("layer: diff: open lower dir %s: %w", l, err)
			}
			t.lowerFS[i] = &beneath{rootfd: fd}
		}
		pfd, err := t.lowerFS[i].open(src, unix.O_PATH)
		if err == unix.ENOENT || err == unix.ENOTDIR || err == unix.ELOOP {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("layer: diff: open %q in lower %s: %w", src, l, err)
		}
		// Only a regular file is opened (see regular).
		fd, notReg, err := reopenRegular(pfd)
		unix.Close(pfd)
		if notReg {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("layer: diff: open %q in lower %s: %w", src, l, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return nil, 0, fmt.Errorf("layer: diff: stat %q in lower %s: %w", src, l, err)
		}
		return os.NewFile(uintptr(fd), src), st.Size, nil
	}
	return nil, 0, errdefs.NotFound("layer: diff: metacopy file %q: no lower layer holds its data (%q)", name, src)
}

// header returns the common tar header of a file.
func (t *tarWalker) header(name string, typ byte, st *unix.Stat_t, xs map[string][]byte) *tar.Header {
	hdr := &tar.Header{
		Typeflag: typ,
		Name:     name,
		Mode:     int64(st.Mode & 0o7777),
		Uid:      int(st.Uid),
		Gid:      int(st.Gid),
		ModTime:  time.Unix(st.Mtim.Sec, 0),
		Format:   tar.FormatPAX,
	}
	if t.rootOwner {
		hdr.Uid, hdr.Gid = 0, 0
	}
	for k, v := range xs {
		if keepXattr(k) {
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = make(map[string]string)
			}
			hdr.PAXRecords[paxXattrPrefix+k] = string(v)
		}
	}
	return hdr
}

// whiteoutHeader writes an OCI whiteout entry (an empty regular file).
func (t *tarWalker) whiteoutHeader(name string, st *unix.Stat_t) error {
	return t.write(&tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Mode:     0,
		ModTime:  time.Unix(st.Mtim.Sec, 0),
		Format:   tar.FormatPAX,
	})
}

func (t *tarWalker) write(hdr *tar.Header) error {
	if err := t.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("layer: writing tar header %q: %w", hdr.Name, err)
	}
	return nil
}

// keepXattr tells which extended attributes belong in a tar: not
// overlayfs' own bookkeeping, and not the host's SELinux label.
func keepXattr(name string) bool {
	return !strings.HasPrefix(name, overlayXattrPrefix) &&
		!strings.HasPrefix(name, userOverlayPrefix) &&
		name != "security.selinux"
}

func isOpaque(xs map[string][]byte) bool {
	return string(xs[overlayOpaqueXattr]) == "y" || string(xs[userOverlayOpaque]) == "y"
}

// skipVanished ignores a file that disappeared (or changed type) between
// listing its directory and opening it, as happens in a running container.
func skipVanished(name, op string, err error) error {
	if err == unix.ENOENT || err == unix.ENOTDIR || err == unix.ELOOP || err == unix.EINVAL {
		return nil
	}
	return fmt.Errorf("layer: %s %q: %w", op, name, err)
}

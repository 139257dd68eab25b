package layer

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/fsutil"
)

// TarOptions shape the tar that WriteTarFD writes.
type TarOptions struct {
	// Name is the name of the top entry. For a directory, "" writes its
	// contents only, without an entry for the directory itself (what
	// `cp SRC/.` copies).
	Name string
	// RootOwner writes every entry as owned by uid and gid 0 (`cp`
	// without --archive).
	RootOwner bool
}

// WriteTarFD writes a tar of the file open as fd, an O_PATH descriptor
// (or any other) that the caller resolved once, typically inside a
// container's root with openat2(RESOLVE_IN_ROOT) and O_NOFOLLOW. Nothing
// is resolved by name after that: a symlink is written as a link and never
// followed, a directory is walked one O_NOFOLLOW descriptor at a time (as
// WriteTar does), and a regular file is reopened through its descriptor.
// So a container swapping a directory for a symlink while it is read
// cannot make WriteTarFD read anything outside the tree it was given.
//
// Directories of kernel filesystems (a running container's /proc, /sys,
// /dev/pts, cgroups...) are written without their contents, which are no
// files of the container: docker's cp shows them as the empty mount points
// they are in the image.
func WriteTarFD(ctx context.Context, w io.Writer, fd int, opts TarOptions) error {
	t := newTarWalker(ctx, w, false)
	t.rootOwner = opts.RootOwner
	t.noKernelFS = true
	defer t.close()
	var st unix.Stat_t
	if err := unix.Fstatat(fd, "", &st, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("layer: stat %q: %w", opts.Name, err)
	}
	name := strings.Trim(opts.Name, "/")
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		dfd, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("layer: open directory %q: %w", name, err)
		}
		if name != "" {
			if err := t.dir(dfd, name); err != nil {
				unix.Close(dfd)
				return err
			}
		}
		if isKernelFS(dfd) {
			unix.Close(dfd)
			return t.finish()
		}
		if err := t.walkRoot(dfd, name); err != nil {
			return err
		}
		return t.finish()
	}
	if name == "" {
		return errdefs.InvalidArgument("not a directory")
	}
	if err := t.object(fd, name, &st); err != nil {
		return err
	}
	return t.finish()
}

// object writes the one file (not a directory) open as fd.
func (t *tarWalker) object(fd int, name string, st *unix.Stat_t) error {
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		// Reopen the very inode through procfs: the magic link names the
		// descriptor's file, no path inside the container is resolved.
		rfd, notReg, err := reopenRegular(fd)
		if notReg {
			return errdefs.Conflict("layer: %q changed type while being read; try again", name)
		}
		if err != nil {
			return fmt.Errorf("layer: open %q: %w", name, err)
		}
		return t.regularFD(rfd, name)
	case unix.S_IFLNK:
		target, err := fsutil.Readlinkat(fd, "")
		if err != nil {
			return fmt.Errorf("layer: readlink %q: %w", name, err)
		}
		hdr := t.header(name, tar.TypeSymlink, st, nil)
		hdr.Linkname = target
		return t.write(hdr)
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
		typ := byte(tar.TypeFifo)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			typ = tar.TypeChar
		case unix.S_IFBLK:
			typ = tar.TypeBlock
		}
		hdr := t.header(name, typ, st, nil)
		if typ != tar.TypeFifo {
			hdr.Devmajor = int64(unix.Major(st.Rdev))
			hdr.Devminor = int64(unix.Minor(st.Rdev))
		}
		return t.write(hdr)
	}
	return errdefs.InvalidArgument("layer: %q is a socket, which cannot be archived", name)
}

// Change is one line of `docker diff`: Kind is "A" (added), "C" (changed)
// or "D" (deleted), Path is absolute inside the container.
type Change struct {
	Kind string
	Path string
}

// Changes lists what the overlayfs upper dir `upper` adds, changes and
// deletes relative to the lower dirs `lowers`. The upper dir belongs to a
// possibly running container, so it is walked one O_NOFOLLOW directory
// descriptor at a time, and the lowers are searched without following any
// symlink: a directory swapped for a symlink meanwhile is reported as what
// it is and never listed through.
func Changes(ctx context.Context, upper string, lowers []string) ([]Change, error) {
	fd, err := openatRetry(unix.AT_FDCWD, upper, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == unix.ENOENT {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("layer: open upper dir %s: %w", upper, err)
	}
	cw := &changeWalker{ctx: ctx}
	defer cw.close()
	lv, err := cw.stack.push(fd)
	if err != nil {
		return nil, fmt.Errorf("layer: stat upper dir %s: %w", upper, err)
	}
	for _, l := range lowers {
		lfd, err := openatRetry(unix.AT_FDCWD, l, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == unix.ENOENT {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("layer: open lower dir %s: %w", l, err)
		}
		cw.lowers = append(cw.lowers, &beneath{rootfd: lfd})
	}
	if err := cw.walk(lv, ""); err != nil {
		return nil, err
	}
	sort.Slice(cw.out, func(i, j int) bool { return cw.out[i].Path < cw.out[j].Path })
	return cw.out, nil
}

type changeWalker struct {
	ctx    context.Context
	lowers []*beneath
	out    []Change
	stack  dirStack
}

func (cw *changeWalker) close() {
	cw.stack.closeAll()
	for _, b := range cw.lowers {
		unix.Close(b.rootfd)
	}
}

// walk records the entries of the directory lv (rel below upper). lv's
// descriptor may be closed and reopened by the walk below it: it is read
// anew for every entry.
func (cw *changeWalker) walk(lv *level, rel string) error {
	if err := cw.ctx.Err(); err != nil {
		return err
	}
	names, err := readDirNames(lv.fd)
	if err != nil {
		return fmt.Errorf("layer: read directory %q: %w", rel, err)
	}
	for _, name := range names {
		p := join(rel, name)
		if len(p)+1 > maxPathLen {
			return tooDeep("layer: diff", p, cw.stack.depth()+1)
		}
		var st unix.Stat_t
		if err := unix.Fstatat(lv.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				continue
			}
			return fmt.Errorf("layer: stat %q: %w", p, err)
		}
		switch {
		case isWhiteout(&st):
			cw.out = append(cw.out, Change{"D", "/" + p})
			continue
		case cw.inLower(p):
			cw.out = append(cw.out, Change{"C", "/" + p})
		default:
			cw.out = append(cw.out, Change{"A", "/" + p})
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		sub, err := openatRetry(lv.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			if skipVanished(p, "open", err) == nil {
				continue // swapped or removed meanwhile
			}
			return fmt.Errorf("layer: open %q: %w", p, err)
		}
		slv, err := cw.stack.push(sub)
		if err != nil {
			return fmt.Errorf("layer: stat %q: %w", p, err)
		}
		err = cw.walk(slv, p)
		if perr := cw.stack.pop(); err == nil {
			err = perr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// inLower tells whether rel exists (as anything, a symlink included) in
// one of the lowers, reached without following a symlink.
func (cw *changeWalker) inLower(rel string) bool {
	rel = path.Clean(rel)
	for _, b := range cw.lowers {
		fd, err := b.open(rel, unix.O_PATH)
		if err == nil {
			unix.Close(fd)
			return true
		}
	}
	return false
}

// mqueueMagic is the mqueue filesystem's magic (not in x/sys).
const mqueueMagic = 0x19800202

// isKernelFS tells whether the directory open as fd is on a filesystem of
// kernel objects rather than files (procfs, sysfs, cgroupfs, devpts...).
func isKernelFS(fd int) bool {
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		return false
	}
	switch int64(fs.Type) {
	case unix.PROC_SUPER_MAGIC, unix.SYSFS_MAGIC, unix.CGROUP_SUPER_MAGIC, unix.CGROUP2_SUPER_MAGIC,
		unix.DEVPTS_SUPER_MAGIC, mqueueMagic, unix.SECURITYFS_MAGIC, unix.DEBUGFS_MAGIC,
		unix.TRACEFS_MAGIC, unix.BPF_FS_MAGIC, unix.NSFS_MAGIC, unix.EFIVARFS_MAGIC,
		unix.PSTOREFS_MAGIC, unix.SELINUX_MAGIC, unix.BINFMTFS_MAGIC:
		return true
	}
	return false
}

package container

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/fsutil"
)

// Volume copy-up: a volume mounted over a directory of the image starts
// with a copy of that directory, as in docker. The image's tree is
// attacker-controlled (its symlinks may point anywhere on the host) and so
// is a volume that a running container shares, so every step works on
// file descriptors: the mount point is resolved inside the container's
// root (openat2 RESOLVE_IN_ROOT, symlinks followed as the container would
// see them), then the tree is walked with *at calls that never follow a
// symlink, and every node is created exclusively under a directory fd of
// the volume.

// maxCopyDepth bounds the recursion (two descriptors per level): deeper
// trees than any real image are refused rather than exhausting fds.
const maxCopyDepth = 1024

// copyImageDataToVolumes copies what the image has at each volume's mount
// point into the volume, when the volume is empty and the container has
// never run (docker copies when it creates the container; berth's first
// start is the same moment, as nothing has run in between), unless the
// mount asked for nocopy.
func copyImageDataToVolumes(c *Container, rootfs string) error {
	if c.State.StartedAt != "" && c.State.StartedAt != ZeroTime {
		return nil
	}
	var root *os.File
	defer func() {
		if root != nil {
			root.Close()
		}
	}()
	for _, mi := range c.Mounts {
		if mi.Type != "volume" || slices.Contains(c.Internal.NoCopyVolumes, mi.Name) {
			continue
		}
		if root == nil {
			var err error
			if root, err = os.OpenFile(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
				return fmt.Errorf("open the container's root filesystem: %w", err)
			}
		}
		if err := copyUpVolume(root, mi); err != nil {
			return errdefs.InvalidArgument("copying the image's %s into volume %s failed: %v (use -v %s:%s:nocopy or --mount ...,volume-nocopy to skip the copy)",
				mi.Destination, mi.Name, err, mi.Name, mi.Destination)
		}
	}
	return nil
}

// copyUpVolume copies the image's directory at mi.Destination (resolved
// inside root) into the volume at mi.Source if the volume is empty.
func copyUpVolume(root *os.File, mi MountInfo) error {
	handle, err := pathrs.OpenatInRoot(root, mi.Destination)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, os.ErrNotExist) {
			return nil // nothing in the image there: nothing to copy
		}
		return fmt.Errorf("resolve %s in the container: %w", mi.Destination, err)
	}
	defer handle.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(handle.Fd()), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil // a file: the mount will replace it, docker copies nothing
	}
	src, err := openDirAt(int(handle.Fd()), ".")
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(mi.Source, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open volume: %w", err)
	}
	defer dst.Close()
	if names, err := dst.Readdirnames(1); len(names) > 0 || err != io.EOF {
		if err != nil && err != io.EOF {
			return fmt.Errorf("read volume: %w", err)
		}
		return nil // a volume with data keeps it
	}
	cp := &copier{volume: dst, links: map[devIno]string{}}
	if err := cp.copyDir(src, dst, "", 0); err != nil {
		return err
	}
	// The volume's root takes the owner and mode of the image's directory.
	return cp.applyMeta(src, dst, "", &st, false)
}

type devIno struct{ dev, ino uint64 }

// copier copies one tree into a volume.
type copier struct {
	volume *os.File
	// links maps a source inode with several links to the volume-relative
	// path of its first copy, so that hard links stay hard links.
	links map[devIno]string
}

func openDirAt(dirfd int, name string) (*os.File, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "openat", Path: name, Err: err}
	}
	return os.NewFile(uintptr(fd), name), nil
}

// copyDir copies the entries of src into dst; rel is dst's path in the
// volume.
func (cp *copier) copyDir(src, dst *os.File, rel string, depth int) error {
	if depth > maxCopyDepth {
		return fmt.Errorf("%s: directories nested more than %d deep", rel, maxCopyDepth)
	}
	names, err := src.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("read %s: %w", "/"+rel, err)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := cp.copyEntry(src, dst, name, path.Join(rel, name), depth); err != nil {
			return err
		}
	}
	return nil
}

func (cp *copier) copyEntry(src, dst *os.File, name, rel string, depth int) error {
	sfd, dfd := int(src.Fd()), int(dst.Fd())
	var st unix.Stat_t
	if err := unix.Fstatat(sfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("stat %s: %w", "/"+rel, err)
	}
	key := devIno{uint64(st.Dev), st.Ino}
	typ := st.Mode & unix.S_IFMT
	if typ != unix.S_IFDIR && st.Nlink > 1 {
		if first, ok := cp.links[key]; ok && cp.link(first, dfd, name) == nil {
			return nil
		}
	}
	switch typ {
	case unix.S_IFDIR:
		sub, err := openDirAt(sfd, name)
		if err != nil {
			return err
		}
		defer sub.Close()
		if err := unix.Mkdirat(dfd, name, 0o700); err != nil {
			return fmt.Errorf("create %s in the volume: %w", "/"+rel, err)
		}
		dsub, err := openDirAt(dfd, name)
		if err != nil {
			return err
		}
		defer dsub.Close()
		if err := cp.copyDir(sub, dsub, rel, depth+1); err != nil {
			return err
		}
		return cp.applyMeta(sub, dsub, "", &st, false)
	case unix.S_IFREG:
		if err := cp.copyFile(sfd, dfd, name, rel, &st); err != nil {
			return err
		}
	case unix.S_IFLNK:
		target, err := fsutil.Readlinkat(sfd, name)
		if err != nil {
			return fmt.Errorf("read link %s: %w", "/"+rel, err)
		}
		if err := unix.Symlinkat(target, dfd, name); err != nil {
			return fmt.Errorf("create link %s in the volume: %w", "/"+rel, err)
		}
		return cp.applyMeta(nil, dst, name, &st, true)
	default: // devices, FIFOs, sockets are recreated, as docker does
		if err := unix.Mknodat(dfd, name, st.Mode&unix.S_IFMT|0o600, int(st.Rdev)); err != nil {
			return fmt.Errorf("create %s in the volume: %w", "/"+rel, err)
		}
		if err := cp.applyMeta(nil, dst, name, &st, false); err != nil {
			return err
		}
	}
	if st.Nlink > 1 {
		if _, ok := cp.links[key]; !ok {
			cp.links[key] = rel
		}
	}
	return nil
}

// copyFile copies the regular file name of the directory sfd into dfd.
func (cp *copier) copyFile(sfd, dfd int, name, rel string, st *unix.Stat_t) error {
	// O_NONBLOCK: if the node is no longer the regular file we saw, it
	// must not block us (a FIFO); fstat then refuses it.
	in, err := unix.Openat(sfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", "/"+rel, err)
	}
	inf := os.NewFile(uintptr(in), name)
	defer inf.Close()
	var ist unix.Stat_t
	if err := unix.Fstat(in, &ist); err != nil {
		return err
	}
	if ist.Mode&unix.S_IFMT != unix.S_IFREG || ist.Ino != st.Ino || ist.Dev != st.Dev {
		return fmt.Errorf("%s changed while it was copied", "/"+rel)
	}
	out, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s in the volume: %w", "/"+rel, err)
	}
	outf := os.NewFile(uintptr(out), name)
	defer outf.Close()
	if _, err := io.Copy(outf, inf); err != nil {
		return fmt.Errorf("copy %s: %w", "/"+rel, err)
	}
	return cp.applyMeta(inf, outf, "", st, false)
}

// link makes name in dfd a hard link to the volume's copy at rel; the copy
// is found again beneath the volume without following any symlink.
func (cp *copier) link(rel string, dfd int, name string) error {
	fd, err := unix.Openat2(int(cp.volume.Fd()), rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Linkat(fd, "", dfd, name, unix.AT_EMPTY_PATH)
}

// applyMeta gives the copy the source's owner, mode, extended attributes
// and times. With src and dst as files of the same node, it works on
// their descriptors; with name set (src nil), on the entry name of the
// directory dst, never following a symlink there.
func (cp *copier) applyMeta(src, dst *os.File, name string, st *unix.Stat_t, symlink bool) error {
	if name == "" {
		fd := int(dst.Fd())
		// Owner first: chown clears set-id bits and file capabilities.
		if err := unix.Fchown(fd, int(st.Uid), int(st.Gid)); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
		if err := unix.Fchmod(fd, uint32(st.Mode&0o7777)); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
		copyXattrs(int(src.Fd()), fd)
		return futimens(fd, statTimes(st))
	}
	dfd := int(dst.Fd())
	if err := unix.Fchownat(dfd, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown %s: %w", name, err)
	}
	if !symlink {
		// A device node or FIFO: chmod through an O_PATH descriptor of
		// the node we made (chmod by name would follow a symlink a
		// container sharing the volume swapped in).
		fd, err := unix.Openat(dfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		var got unix.Stat_t
		if err := unix.Fstat(fd, &got); err != nil {
			return err
		}
		if got.Mode&unix.S_IFMT != st.Mode&unix.S_IFMT {
			return fmt.Errorf("%s was replaced while it was copied", name)
		}
		if err := unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), uint32(st.Mode&0o7777)); err != nil {
			return fmt.Errorf("chmod %s: %w", name, err)
		}
	}
	return unix.UtimesNanoAt(dfd, name, statTimes(st), unix.AT_SYMLINK_NOFOLLOW)
}

func statTimes(st *unix.Stat_t) []unix.Timespec {
	return []unix.Timespec{st.Atim, st.Mtim}
}

// futimens sets the times of the file open as fd (utimensat with a NULL
// path, which x/sys does not offer).
func futimens(fd int, ts []unix.Timespec) error {
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// copyXattrs copies the extended attributes of src to dst where the
// filesystems allow it (docker copies them on a best-effort basis too).
// overlayfs' own attributes are never copied.
func copyXattrs(src, dst int) {
	size, err := unix.Flistxattr(src, nil)
	if err != nil || size <= 0 {
		return
	}
	buf := make([]byte, size)
	size, err = unix.Flistxattr(src, buf)
	if err != nil {
		return
	}
	for _, attr := range strings.Split(string(buf[:size]), "\x00") {
		if attr == "" || strings.HasPrefix(attr, "trusted.overlay.") {
			continue
		}
		n, err := unix.Fgetxattr(src, attr, nil)
		if err != nil || n < 0 {
			continue
		}
		val := make([]byte, n)
		if n, err = unix.Fgetxattr(src, attr, val); err != nil {
			continue
		}
		unix.Fsetxattr(dst, attr, val[:n], 0)
	}
}

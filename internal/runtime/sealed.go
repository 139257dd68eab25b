package runtime

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// The binary that enters containers (CVE-2019-5736).
//
// The init (`_init run`), the exec helper (`_exec`) and whatever the
// helper forks into a container run berth's binary where a container can
// reach them: a script starting `#!/proc/self/exe`, run by one of them,
// runs that binary again under the container's credentials, dumpable, so
// the container can keep an fd of /proc/<pid>/exe and reopen it for
// writing through /proc/self/fd once no process runs the file (ETXTBSY is
// no protection after an upgrade, or once the monitor is gone), and the
// host runs what it wrote.
//
// So those processes never run the installed binary. They run a copy of
// it under the runtime's state directory (on the runroot), bind-mounted
// read-only onto itself: every open for writing through a path a container
// can get to it (/proc/<pid>/exe, /proc/<pid>/map_files, an fd) fails with
// EROFS. The copy is made once per binary and reused by every start; a
// start only checks it (stat, open, statx, fstatfs: microseconds), where a
// sealed memfd copy per start costs ~4 ms for berth's ~12 MB and as much
// memory per running exec. The copy is named after the identity of the
// binary (device, inode, size, mtime and ctime), so an upgraded binary
// gets its own; it is made under a lock, published by attaching the
// read-only mount (atomic), and used only if it is the root of a read-only
// mount of the right size, so a half-made copy (a crash, or a runroot
// that is not a tmpfs after a reboot) is made again. Making a new copy
// detaches the other ones: a process that already opened one keeps it,
// the mount goes when the last user does. Helpers are started through an
// fd of the checked copy (/proc/<pid>/fd/N), never its path again.
//
// A container cannot reach the runroot: its root is its own rootfs, its
// copy of the host's mounts goes with the old root at pivot_root, and the
// helpers' exe is on a mount of the host's namespace, which it cannot
// remount. Host root can, as it can write the installed binary anyway.
// The monitor and the CLI run the installed binary, but outside the
// container's pid namespace.
// Where the mount cannot be made (a kernel older than 5.12), each
// start uses a sealed memfd copy instead, as runc did before 1.2.

// exeDir is the directory of the read-only copies, under the runtime's
// state directory; the ':' keeps it apart from any container id.
const exeDir = "exe:ro"

// sealedExe returns an fd of a copy of the berth binary that cannot be
// written through; start helpers with execPath of it and close it once
// they are started.
func (b *Builtin) sealedExe() (*os.File, error) {
	src := b.self()
	var st unix.Stat_t
	if err := unix.Stat(src, &st); err != nil {
		return nil, fmt.Errorf("the berth binary %s: %w", src, err)
	}
	dir := filepath.Join(b.Root, exeDir)
	if f := openView(filepath.Join(dir, viewName(&st)), st.Size); f != nil {
		return f, nil
	}
	f, err := makeView(dir, src)
	if err == nil {
		return f, nil
	}
	f, merr := sealedMemfd(src)
	if merr != nil {
		return nil, fmt.Errorf("making a read-only copy of the berth binary %s for containers: %w (a sealed memory copy failed too: %v)", src, err, merr)
	}
	return f, nil
}

// execPath is the path a child of this process execs f by: its fd in
// this process's fd table, which the child's own fd shuffling before
// execve cannot touch.
func execPath(f *os.File) string {
	return "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/" + strconv.Itoa(int(f.Fd()))
}

// viewName names the copy of a binary with the identity st.
func viewName(st *unix.Stat_t) string {
	return fmt.Sprintf("berth-%x-%x-%x-%x.%x-%x.%x", st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
}

// openView opens the copy at path if it is usable: a regular file of the
// given size that is the root of a read-only, executable mount. Else nil.
func openView(path string, size int64) *os.File {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	var stx unix.Statx_t
	var sfs unix.Statfs_t
	ok := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_TYPE|unix.STATX_SIZE, &stx) == nil &&
		unix.Fstatfs(fd, &sfs) == nil &&
		stx.Mode&unix.S_IFMT == unix.S_IFREG && int64(stx.Size) == size &&
		stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 && stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0 &&
		sfs.Flags&unix.ST_RDONLY != 0 && sfs.Flags&unix.ST_NOEXEC == 0
	if !ok {
		unix.Close(fd)
		return nil
	}
	return os.NewFile(uintptr(fd), path)
}

// makeView copies src into dir and mounts the copy read-only onto
// itself, under dir's lock, unless another process just did.
func makeView(dir, src string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return nil, err
	}
	in, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(in.Fd()), &st); err != nil {
		return nil, err
	}
	name := viewName(&st)
	path := filepath.Join(dir, name)
	if f := openView(path, st.Size); f != nil {
		return f, nil
	}
	// Where the mount cannot be made, fail before copying: each start
	// then falls back to a memfd without paying for a copy here too.
	if err := probeMount(dir); err != nil {
		return nil, err
	}
	// Whatever else is there is stale: a half-made copy of this binary,
	// or copies of other ones.
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if e.Name() != ".lock" {
			removeView(filepath.Join(dir, e.Name()))
		}
	}
	if err := copyBinary(in, &st, path); err != nil {
		removeView(path)
		return nil, err
	}
	if err := mountReadOnly(path); err != nil {
		removeView(path)
		return nil, err
	}
	f := openView(path, st.Size)
	if f == nil {
		removeView(path)
		return nil, errors.New("the read-only copy failed its check once made")
	}
	return f, nil
}

// copyBinary copies in (whose identity is st) to path; it fails if in
// changed meanwhile.
func copyBinary(in *os.File, st *unix.Stat_t, path string) error {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o555)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, io.LimitReader(in, st.Size))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	var after unix.Stat_t
	if err := unix.Fstat(int(in.Fd()), &after); err != nil {
		return err
	}
	if viewName(&after) != viewName(st) {
		return errors.New("the binary changed while it was copied")
	}
	return nil
}

// mountReadOnly bind-mounts the file at path read-only onto itself. The
// mount is made detached, made read-only (and executable: the runroot may
// be noexec) and only then attached, so it is never writable once there.
func mountReadOnly(path string) error {
	target, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(target)
	tree, err := unix.OpenTree(target, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if err != nil {
		return fmt.Errorf("open_tree: %w", err)
	}
	defer unix.Close(tree)
	attr := &unix.MountAttr{
		Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV,
		Attr_clr: unix.MOUNT_ATTR_NOEXEC,
	}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, attr); err != nil {
		return fmt.Errorf("mount_setattr: %w", err)
	}
	if err := unix.MoveMount(tree, "", target, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}

// probeMount checks that the mount of mountReadOnly can be made, on a
// detached clone of dir that goes with its fd.
func probeMount(dir string) error {
	tree, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open_tree: %w", err)
	}
	defer unix.Close(tree)
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}); err != nil {
		return fmt.Errorf("mount_setattr: %w", err)
	}
	return nil
}

// removeView detaches every mount on path and removes it. A process
// that runs the copy, or holds an fd of it, keeps it.
func removeView(path string) {
	for range 8 {
		if unix.Unmount(path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW) != nil {
			break
		}
	}
	os.Remove(path)
}

// sealedMemfd copies src into a memfd sealed against any change.
func sealedMemfd(src string) (*os.File, error) {
	in, err := os.Open(src)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	fd, err := unix.MemfdCreate("berth", unix.MFD_ALLOW_SEALING|unix.MFD_CLOEXEC)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "berth (sealed)")
	if _, err := io.Copy(f, in); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SEAL|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

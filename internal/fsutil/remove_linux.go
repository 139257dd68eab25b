// Package fsutil holds file-tree operations on trees a container may have
// built: they go by descriptors, never follow a symlink, never leave the
// mount they start on, and keep a bounded number of descriptors open
// however deep the tree is.
package fsutil

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// maxOpenDirs bounds the directory descriptors a removal holds. A
// directory deeper than that is moved up to the top directory under a
// fresh name and removed from there later.
const maxOpenDirs = 64

// RemoveAll removes path and everything below it, like os.RemoveAll, for
// trees a container controls: no symlink is followed, nothing on another
// mount (a mount point inside the tree) is entered or detached, and
// however deep the tree (a container nests 30000 directories in a second)
// at most maxOpenDirs descriptors are open. A missing path is no error.
// What cannot be removed (a mount point below path) is reported after
// everything else is gone.
func RemoveAll(path string) error {
	path = filepath.Clean(path)
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if base == "" || base == "." || base == ".." || base == "/" {
		return fmt.Errorf("remove %s: refusing to remove a root or relative directory name", path)
	}
	pfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove %s: open parent: %w", path, err)
	}
	defer unix.Close(pfd)
	if err := RemoveAllAt(pfd, base); err != nil {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// RemoveAllAt is RemoveAll of name in the directory open as dirfd. name is
// not removed if it is itself a mount point.
func RemoveAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return err
	}
	parent, err := statxAt(dirfd, ".")
	if err != nil {
		return err
	}
	top, err := statxAt(dirfd, name)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return err
	}
	if top.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unix.EPERM // the unlink's own error: a file we may not remove
	}
	if !sameMount(&parent, &top) {
		return mountErr(name)
	}
	fd, err := openDir(dirfd, name, &top)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return err
	}
	r := &remover{topfd: fd, top: top}
	r.run()
	unix.Close(fd)
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT && r.err == nil {
		r.err = err
	}
	return r.err
}

// frame is a directory being emptied: its descriptor, its name in its
// parent, the names read but not yet handled, and names it could not
// remove (kept so that they are not tried again and again).
type frame struct {
	fd      int
	name    string
	pending []string
	stuck   map[string]bool
}

type remover struct {
	topfd  int
	top    unix.Statx_t
	stack  []*frame
	err    error // the first error; the removal goes on past it
	failed int
	moved  int // directories moved up to the top, for fresh names
	buf    []byte
}

func (r *remover) fail(name string, err error) {
	r.failed++
	if r.err == nil {
		r.err = fmt.Errorf("%s: %w", name, err)
	}
}

// run empties the top directory. It is a loop over an explicit stack of
// at most maxOpenDirs frames; the top frame's descriptor is topfd.
func (r *remover) run() {
	r.stack = []*frame{{fd: r.topfd}}
	for len(r.stack) > 0 {
		f := r.stack[len(r.stack)-1]
		name, ok, err := r.next(f)
		if err != nil {
			r.fail(f.name, err)
			ok = false
		}
		if !ok {
			r.pop()
			continue
		}
		r.remove(f, name)
	}
	if r.failed > 1 {
		r.err = fmt.Errorf("%w (and %d more entries could not be removed)", r.err, r.failed-1)
	}
}

// pop closes the finished frame and removes its directory from its parent.
func (r *remover) pop() {
	f := r.stack[len(r.stack)-1]
	r.stack = r.stack[:len(r.stack)-1]
	if len(r.stack) == 0 {
		return // the top: its caller removes it
	}
	unix.Close(f.fd)
	p := r.stack[len(r.stack)-1]
	if err := unix.Unlinkat(p.fd, f.name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		p.markStuck(f.name)
		if err != unix.ENOTEMPTY && err != unix.EEXIST {
			r.fail(f.name, err) // ENOTEMPTY: a stuck child was reported already
		}
	}
}

func (f *frame) markStuck(name string) {
	if f.stuck == nil {
		f.stuck = make(map[string]bool)
	}
	f.stuck[name] = true
}

// remove removes the entry name of frame f: a non-directory at once, a
// directory by entering it (a new frame) or, with the stack full, by
// moving it up to the top directory.
func (r *remover) remove(f *frame, name string) {
	err := unix.Unlinkat(f.fd, name, 0)
	if err == nil || err == unix.ENOENT {
		return
	}
	if err != unix.EISDIR && err != unix.EPERM {
		f.markStuck(name)
		r.fail(name, err)
		return
	}
	st, serr := statxAt(f.fd, name)
	switch {
	case serr == unix.ENOENT:
		return
	case serr != nil:
		f.markStuck(name)
		r.fail(name, serr)
		return
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		f.markStuck(name)
		r.fail(name, err)
		return
	case !sameMount(&r.top, &st):
		f.markStuck(name)
		r.fail(name, ErrMountPoint)
		return
	}
	if len(r.stack) >= maxOpenDirs {
		r.moveUp(f, name)
		return
	}
	fd, err := openDir(f.fd, name, &st)
	if err == unix.ENOENT {
		return
	}
	if err != nil {
		f.markStuck(name)
		r.fail(name, err)
		return
	}
	r.stack = append(r.stack, &frame{fd: fd, name: name})
}

// moveUp renames the directory name of f into the top directory under a
// fresh name; the top frame finds it when it reads its entries again.
func (r *remover) moveUp(f *frame, name string) {
	for {
		r.moved++
		fresh := ".berth-rm-" + strconv.Itoa(r.moved)
		err := unix.Renameat2(f.fd, name, r.topfd, fresh, unix.RENAME_NOREPLACE)
		if err == unix.EEXIST {
			continue
		}
		if err == unix.EINVAL {
			// No RENAME_NOREPLACE on this filesystem: the fresh name is
			// checked first (nothing else writes in a tree being removed).
			if unix.Fstatat(r.topfd, fresh, new(unix.Stat_t), unix.AT_SYMLINK_NOFOLLOW) == nil {
				continue
			}
			err = unix.Renameat(f.fd, name, r.topfd, fresh)
		}
		if err != nil && err != unix.ENOENT {
			f.markStuck(name)
			r.fail(name, err)
		}
		r.stack[0].pending = nil // read the top again: it holds fresh now
		return
	}
}

// next returns the next entry of f to remove. Entries are read in batches
// from the start of the directory (removed ones are gone from it, so
// reading again from the start makes progress).
func (r *remover) next(f *frame) (string, bool, error) {
	for len(f.pending) > 0 {
		n := f.pending[0]
		f.pending = f.pending[1:]
		if !f.stuck[n] {
			return n, true, nil
		}
	}
	if _, err := unix.Seek(f.fd, 0, 0); err != nil {
		return "", false, err
	}
	if r.buf == nil {
		r.buf = make([]byte, 16<<10)
	}
	buf := r.buf
	for {
		n, err := unix.Getdents(f.fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", false, err
		}
		if n <= 0 {
			return "", false, nil
		}
		var names []string
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
		for _, name := range names {
			if !f.stuck[name] {
				f.pending = append(f.pending, name)
			}
		}
		if len(f.pending) > 0 {
			name := f.pending[0]
			f.pending = f.pending[1:]
			return name, true, nil
		}
	}
}

// openDir opens the directory name in dirfd without following a symlink
// and checks that it is the inode st describes (not swapped meanwhile).
func openDir(dirfd int, name string, st *unix.Statx_t) (int, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == unix.ELOOP || err == unix.ENOTDIR {
		return -1, unix.ENOENT // swapped for something else: gone
	}
	if err != nil {
		return -1, err
	}
	got, err := statxAt(fd, "")
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	if got.Ino != st.Ino || !sameMount(&got, st) {
		unix.Close(fd)
		return -1, errors.New("directory changed while being removed")
	}
	return fd, nil
}

// statxAt stats name in dirfd ("" for dirfd itself) without following a
// symlink, with the mount id where the kernel reports it (5.8+).
func statxAt(dirfd int, name string) (unix.Statx_t, error) {
	var st unix.Statx_t
	flags := unix.AT_SYMLINK_NOFOLLOW | unix.AT_NO_AUTOMOUNT
	if name == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	for {
		err := unix.Statx(dirfd, name, flags, unix.STATX_TYPE|unix.STATX_INO|unix.STATX_MNT_ID, &st)
		if err != unix.EINTR {
			return st, err
		}
	}
}

// sameMount tells whether a and b are on the same mount: same device and,
// where known, same mount id (a bind mount of the same filesystem has the
// device but not the mount id).
func sameMount(a, b *unix.Statx_t) bool {
	if a.Dev_major != b.Dev_major || a.Dev_minor != b.Dev_minor {
		return false
	}
	if a.Mask&unix.STATX_MNT_ID != 0 && b.Mask&unix.STATX_MNT_ID != 0 {
		return a.Mnt_id == b.Mnt_id
	}
	return true
}

// SameMountAt tells whether the entry name of the directory dirfd lies on
// the directory's own mount (false for a mount point, or if either cannot
// be looked at). Symlinks are not followed.
func SameMountAt(dirfd int, name string) bool {
	p, err := statxAt(dirfd, "")
	if err != nil {
		return false
	}
	c, err := statxAt(dirfd, name)
	if err != nil {
		return false
	}
	return sameMount(&p, &c)
}

// ErrMountPoint is the error for a mount point met inside a tree: it is
// neither entered nor detached.
var ErrMountPoint = errors.New("is a mount point; not removed (unmount it first)")

func mountErr(name string) error {
	return fmt.Errorf("%s %w", name, ErrMountPoint)
}

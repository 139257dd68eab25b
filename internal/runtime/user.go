package runtime

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"slices"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/moby/sys/user"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// maxUserDB bounds what berth reads of a container's /etc/passwd or
// /etc/group: the container owns those files, and a multi-gigabyte one must
// not hold up every `exec -u` and start. Real ones are a few kilobytes;
// large directory exports stay well below this.
const maxUserDB = 16 << 20

// ResolveUser resolves a `--user` value ("", "name", "uid", "uid:gid",
// "name:group", ...) and `--group-add` values against the container's
// /etc/passwd and /etc/group, like Docker:
//
//   - "" means uid 0 (and its passwd entry, if any);
//   - numeric ids need no entry; names must have one, else the error is
//     "unable to find user NAME: no matching entries in passwd file";
//   - without an explicit group, the primary gid comes from passwd and the
//     supplementary groups from /etc/group membership;
//   - the additional gids start with the primary gid (as in Docker 23+),
//     followed by the memberships and the --group-add groups.
//
// rootfs is the container's root filesystem (see ResolveUserAt). It also
// returns the user's home directory ("/" when passwd has none), for HOME.
func ResolveUser(rootfs, spec string, groupAdd []string) (specs.User, string, error) {
	rootfd, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		// No root to read: the files are absent, as in a scratch image.
		return resolveUser(nil, nil, spec, groupAdd)
	}
	defer unix.Close(rootfd)
	return ResolveUserAt(rootfd, spec, groupAdd)
}

// ResolveUserAt is ResolveUser for the root open as rootfd (any
// descriptor of the directory, O_PATH is enough). The container owns
// everything below it: the files are found inside rootfd with every
// symlink resolved as if rootfd were "/" (openat2 RESOLVE_IN_ROOT), so no
// link, absolute or climbing with "..", nor a directory swapped for one,
// makes berth read a host file; and only a regular file of at most
// maxUserDB bytes is read (a FIFO or device planted there would block
// berth or act on the host when opened): anything else counts as absent.
func ResolveUserAt(rootfd int, spec string, groupAdd []string) (specs.User, string, error) {
	passwd, err := readUserDB(rootfd, "/etc/passwd")
	if err != nil {
		return specs.User{}, "", err
	}
	group, err := readUserDB(rootfd, "/etc/group")
	if err != nil {
		return specs.User{}, "", err
	}
	return resolveUser(passwd, group, spec, groupAdd)
}

// resolveUser does ResolveUser's work on the contents of the two files,
// nil for an absent one.
func resolveUser(passwd, group []byte, spec string, groupAdd []string) (specs.User, string, error) {
	defaults := &user.ExecUser{Uid: 0, Gid: 0, Home: "/"}
	eu, err := user.GetExecUser(spec, defaults, readerOrNil(passwd), readerOrNil(group))
	if err != nil {
		return specs.User{}, "", errdefs.InvalidArgument("%w", err)
	}
	var added []int
	if len(groupAdd) > 0 {
		added, err = user.GetAdditionalGroups(groupAdd, readerOrNil(group))
		if err != nil {
			return specs.User{}, "", errdefs.InvalidArgument("--group-add: %w", err)
		}
		slices.Sort(added) // the library returns them in map order
	}
	u := specs.User{UID: uint32(eu.Uid), GID: uint32(eu.Gid)}
	u.AdditionalGids = []uint32{u.GID}
	for _, g := range append(eu.Sgids, added...) {
		if !slices.Contains(u.AdditionalGids, uint32(g)) {
			u.AdditionalGids = append(u.AdditionalGids, uint32(g))
		}
	}
	home := eu.Home
	if home == "" {
		home = "/"
	}
	return u, home, nil
}

// readUserDB returns the contents of the file at p inside rootfd, or nil
// when there is no regular file there (Docker treats an unreadable file as
// absent). It errors only when the file is larger than maxUserDB.
func readUserDB(rootfd int, p string) ([]byte, error) {
	h, err := openPathInRoot(rootfd, p)
	if err != nil {
		return nil, nil
	}
	defer unix.Close(h)
	// Judge the inode through the O_PATH descriptor before opening it for
	// reading: opening a device or FIFO can itself act on the host.
	var st unix.Stat_t
	if err := unix.Fstat(h, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, nil
	}
	if kernelFile(h) {
		return nil, nil
	}
	if st.Size > maxUserDB {
		return nil, tooLarge(p)
	}
	// Reopening the descriptor (not the path) reads the inode just judged.
	fd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", h), unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	// The size may have grown since the fstat: read one byte more than
	// allowed to notice.
	data, err := io.ReadAll(io.LimitReader(f, maxUserDB+1))
	if err != nil {
		return nil, nil
	}
	if len(data) > maxUserDB {
		return nil, tooLarge(p)
	}
	return data, nil
}

func tooLarge(p string) error {
	return errdefs.InvalidArgument("the container's %s is larger than %d MiB: berth does not read it to resolve users; use numeric ids (--user UID:GID)", p, maxUserDB>>20)
}

// kernelFile reports whether fd is on procfs or sysfs, whose "regular"
// files can block or have effects when read (/proc/kmsg consumes the
// host's kernel log): never a user database.
func kernelFile(fd int) bool {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return true
	}
	return sfs.Type == unix.PROC_SUPER_MAGIC || sfs.Type == unix.SYSFS_MAGIC
}

// openPathInRoot returns an O_PATH descriptor of p inside rootfd, every
// symlink on the way (the last one too) resolved as if rootfd were "/",
// /proc's magic links refused.
func openPathInRoot(rootfd int, p string) (int, error) {
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	for range 16 {
		fd, err := unix.Openat2(rootfd, "."+path.Clean("/"+p), &how)
		switch err {
		case unix.EAGAIN, unix.EINTR:
			continue // a rename somewhere in the container meanwhile
		case unix.ENOSYS, unix.EPERM:
			// Before Linux 5.6, or a seccomp filter that hides openat2:
			// securejoin's pathrs-lite walks one descriptor at a time.
			return openPathInRootFallback(rootfd, p)
		}
		return fd, err
	}
	return -1, unix.EAGAIN
}

func openPathInRootFallback(rootfd int, p string) (int, error) {
	dup, err := unix.FcntlInt(uintptr(rootfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	root := os.NewFile(uintptr(dup), "/")
	defer root.Close()
	f, err := pathrs.OpenatInRoot(root, p)
	if err != nil {
		return -1, err
	}
	defer f.Close()
	return unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
}

// readerOrNil returns an untyped nil for absent contents, which the user
// package checks for.
func readerOrNil(b []byte) io.Reader {
	if b == nil {
		return nil
	}
	return bytes.NewReader(b)
}

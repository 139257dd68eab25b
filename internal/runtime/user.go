package runtime

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/user"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

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
// The files are opened inside rootfs with symlinks resolved as if rootfs
// were "/", so an image cannot make berth read a host file. It also returns
// the user's home directory ("/" when passwd has none), for HOME.
func ResolveUser(rootfs, spec string, groupAdd []string) (specs.User, string, error) {
	passwd := openInRoot(rootfs, "/etc/passwd")
	group := openInRoot(rootfs, "/etc/group")
	defer closeIf(passwd)
	defer closeIf(group)

	defaults := &user.ExecUser{Uid: 0, Gid: 0, Home: "/"}
	eu, err := user.GetExecUser(spec, defaults, readerOrNil(passwd), readerOrNil(group))
	if err != nil {
		return specs.User{}, "", errdefs.InvalidArgument("%w", err)
	}
	var added []int
	if len(groupAdd) > 0 {
		if group != nil {
			if _, err := group.Seek(0, io.SeekStart); err != nil {
				return specs.User{}, "", err
			}
		}
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

// openInRoot opens path for reading as seen from inside root: symlinks,
// absolute or relative, cannot lead out of root. It returns nil when the
// file cannot be opened, which callers treat as "absent" (like Docker).
func openInRoot(root, path string) *os.File {
	dir, err := os.Open(root)
	if err != nil {
		return nil
	}
	defer dir.Close()
	// openat2 with RESOLVE_IN_ROOT resolves in the kernel, immune to the
	// tree changing under us (Linux 5.6+).
	fd, err := unix.Openat2(int(dir.Fd()), path, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err == nil {
		return regularOnly(os.NewFile(uintptr(fd), filepath.Join(root, path)))
	}
	if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EPERM) {
		return nil
	}
	// Older kernels (or a seccomp filter that hides openat2): resolve in
	// user space, then refuse a final symlink swapped in meanwhile.
	p, err := securejoin.SecureJoin(root, path)
	if err != nil {
		return nil
	}
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil
	}
	return regularOnly(f)
}

// regularOnly closes f and returns nil unless f is a regular file (a FIFO or
// device planted at /etc/passwd must not hang or confuse us; the opens use
// O_NONBLOCK so that opening a FIFO does not wait for a writer).
func regularOnly(f *os.File) *os.File {
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil
	}
	return f
}

func readerOrNil(f *os.File) io.Reader {
	if f == nil {
		return nil // an untyped nil, which the user package checks for
	}
	return f
}

func closeIf(f *os.File) {
	if f != nil {
		f.Close()
	}
}

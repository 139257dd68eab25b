package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/layer"
	"github.com/berth-dev/berth/internal/snapshot"
)

// withRoot calls fn with an O_PATH descriptor of the container's root
// directory. With volumes, a running container's root is its own, as its
// processes see it (/proc/<pid>/root: its volumes, binds and tmpfs mounts
// included, as `docker cp` sees them); otherwise it is the overlay of its
// layers, mounted for the duration of fn if the container is stopped.
// Everything below the descriptor must be resolved relative to it (see
// openIn), never as a path string: the container owns that tree.
func (s *Service) withRoot(ctx context.Context, c *Container, volumes bool, fn func(rootfd int) error) error {
	if volumes && c.State.Running && c.State.Pid > 0 {
		fd, err := s.openRunningRoot(c)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return fn(fd)
	}
	target := s.RootfsDir(c.ID)
	if mounted, _ := snapshot.IsMountPoint(target); !mounted {
		if err := os.MkdirAll(s.BundleDir(c.ID), 0o700); err != nil {
			return err
		}
		if err := s.snaps.Mount(c.ID, c.chainIDs(), target); err != nil {
			return err
		}
		defer snapshot.Unmount(target)
	}
	if volumes {
		// A stopped container's volumes and binds, as docker cp shows them,
		// on a private copy of its root that no other process sees.
		if fd, err := withMounts(target, c.Mounts); err == nil {
			defer unix.Close(fd)
			return fn(fd)
		}
		// Kernels before 6.15 cannot mount on a detached tree: the
		// layers alone, as before.
	}
	fd, err := unix.Open(target, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the root filesystem of container %s: %w", c.ShortName(), err)
	}
	defer unix.Close(fd)
	return fn(fd)
}

// withMounts returns a detached clone of the mount at root (open_tree),
// with the container's volumes and binds mounted on it at their in-root
// destinations: each destination is resolved inside the clone (openIn) and
// mounted on through its descriptor (move_mount), never by path, and a
// read-only mount stays read-only. The tree vanishes when the returned
// descriptor is closed; nothing is mounted in berth's mount namespace.
func withMounts(root string, mounts []MountInfo) (int, error) {
	tree, err := unix.OpenTree(unix.AT_FDCWD, root, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return -1, err
	}
	// Parents before children, as the runtime mounts them.
	ms := append([]MountInfo(nil), mounts...)
	sort.SliceStable(ms, func(i, j int) bool {
		return strings.Count(path.Clean(ms[i].Destination), "/") < strings.Count(path.Clean(ms[j].Destination), "/")
	})
	for _, m := range ms {
		if m.Type != "bind" && m.Type != "volume" {
			continue // tmpfs: nothing survives the container's stop
		}
		if err := attachAt(tree, m); err != nil {
			unix.Close(tree)
			return -1, fmt.Errorf("mount %s at %s: %w", m.Source, m.Destination, err)
		}
	}
	return tree, nil
}

// attachAt mounts a clone of m's source on m's destination inside tree.
func attachAt(tree int, m MountInfo) error {
	src, err := unix.OpenTree(unix.AT_FDCWD, m.Source, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return err
	}
	defer unix.Close(src)
	if !m.RW {
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(src, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
			return err
		}
	}
	dst, err := openIn(tree, m.Destination, true)
	if err != nil {
		return err
	}
	defer unix.Close(dst)
	return unix.MoveMount(src, "", dst, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
}

// openRunningRoot opens /proc/<pid>/root of a running container and checks
// that it is the root of that container's overlay: the pid may have been
// reused by a host process since the record was read, and a host root must
// never be taken for the container's.
func (s *Service) openRunningRoot(c *Container) (int, error) {
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/root", c.State.Pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, errdefs.Conflict("container %s is not running any more (%v); try again", c.ShortName(), err)
	}
	var got, want unix.Stat_t
	if err := unix.Fstat(fd, &got); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.Stat(s.RootfsDir(c.ID), &want); err != nil || got.Dev != want.Dev || got.Ino != want.Ino {
		unix.Close(fd)
		return -1, errdefs.Conflict("container %s is not running any more; try again", c.ShortName())
	}
	return fd, nil
}

// openInRetries bounds the lookups of openIn that a concurrent rename in
// the container made the kernel abandon (EAGAIN).
const openInRetries = 16

// openIn opens p inside the root open as rootfd and returns an O_PATH
// descriptor. Every symlink on the way, absolute or climbing with "..", is
// resolved as if rootfd were "/" (openat2 RESOLVE_IN_ROOT), /proc's magic
// links are refused, and the last component is followed only if follow: an
// unfollowed symlink is returned as itself. Errors are the kernel's.
func openIn(rootfd int, p string, follow bool) (int, error) {
	return openInWith(unix.Openat2, rootfd, p, follow)
}

// openInWith is openIn with the openat2 call given (tests fake it).
func openInWith(openat2 func(int, string, *unix.OpenHow) (int, error), rootfd int, p string, follow bool) (int, error) {
	clean := path.Clean("/" + p)
	flags := uint64(unix.O_PATH | unix.O_CLOEXEC)
	if !follow {
		flags |= unix.O_NOFOLLOW
	}
	how := unix.OpenHow{Flags: flags, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	for range openInRetries {
		fd, err := openat2(rootfd, "."+clean, &how)
		switch err {
		case unix.EAGAIN, unix.EINTR:
			continue // a rename somewhere in the container meanwhile
		case unix.ENOSYS:
			return openInFallback(rootfd, clean, follow)
		}
		return fd, err
	}
	// A bound against a container renaming without pause: the lookup is
	// not retried forever.
	return -1, errdefs.Conflict("the path %s kept changing in the container while being looked up (renamed meanwhile, %d attempts); try again", clean, openInRetries)
}

// openInFallback is openIn for kernels without openat2 (before 5.6):
// securejoin's pathrs-lite walks the path one descriptor at a time.
func openInFallback(rootfd int, clean string, follow bool) (int, error) {
	dup, err := unix.FcntlInt(uintptr(rootfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	root := os.NewFile(uintptr(dup), "/")
	defer root.Close()
	if follow || clean == "/" {
		f, err := pathrs.OpenatInRoot(root, clean)
		if err != nil {
			return -1, errnoOf(err)
		}
		defer f.Close()
		return unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	}
	dir, err := pathrs.OpenatInRoot(root, path.Dir(clean))
	if err != nil {
		return -1, errnoOf(err)
	}
	defer dir.Close()
	return unix.Openat(int(dir.Fd()), path.Base(clean), unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

func errnoOf(err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}

// statIn is openIn plus an fstat; errors are docker's: a missing path is
// "Could not find the file ... in container ...".
func statIn(rootfd int, p, ref string, follow bool) (int, *unix.Stat_t, error) {
	fd, err := openIn(rootfd, p, follow)
	if err == unix.ENOENT || err == unix.ENOTDIR {
		return -1, nil, errdefs.NotFound("Could not find the file %s in container %s", p, ref)
	}
	if errdefs.IsConflict(err) {
		return -1, nil, fmt.Errorf("container %s: %w", ref, err)
	}
	if err != nil {
		return -1, nil, fmt.Errorf("open %s in container %s: %w", p, ref, err)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(fd, "", &st, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW); err != nil {
		unix.Close(fd)
		return -1, nil, err
	}
	return fd, &st, nil
}

func (c *Container) chainIDs() []digest.Digest {
	out := make([]digest.Digest, len(c.Internal.ChainIDs))
	for i, ch := range c.Internal.ChainIDs {
		out[i] = digest.Digest(ch)
	}
	return out
}

// Export writes the container's filesystem as a tar, like `docker export`.
func (s *Service) Export(ctx context.Context, ref string, w io.Writer) error {
	c, err := s.Get(ctx, ref)
	if err != nil {
		return err
	}
	// The overlay, not /proc/<pid>/root: export leaves volumes out.
	return s.withRoot(ctx, c, false, func(rootfd int) error {
		return layer.WriteTarFD(ctx, w, rootfd, layer.TarOptions{})
	})
}

// Change is one line of `docker diff`.
type Change = layer.Change

// Changes lists what the container changed relative to its image. The
// upper dir of a running container is walked by descriptors: a directory
// it swaps for a symlink meanwhile is never listed through.
func (s *Service) Changes(ctx context.Context, ref string) ([]Change, error) {
	c, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	lowers := []string{s.snaps.InitDir(c.ID)}
	for _, ch := range c.chainIDs() {
		lowers = append(lowers, s.snaps.Dir(ch))
	}
	return layer.Changes(ctx, s.snaps.UpperDir(c.ID), lowers)
}

// CommitOptions are `commit` flags.
type CommitOptions struct {
	Reference string
	Author    string
	Message   string
	Changes   []string
	Pause     bool
}

// Commit makes a new image from the container's changes, like `docker commit`.
func (s *Service) Commit(ctx context.Context, ref string, opts CommitOptions) (*image.Image, error) {
	var target string
	if opts.Reference != "" {
		tagged, err := image.ParseTag(opts.Reference)
		if err != nil {
			return nil, err
		}
		target = tagged.String()
	}
	c, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	base, err := s.images.Config(digest.Digest(c.Image))
	if err != nil {
		return nil, fmt.Errorf("the container's image is gone: %w", err)
	}
	cfg := *base
	cfg.Config = commitConfig(base.Config, c.Config)
	if err := image.ApplyChanges(&cfg.Config, opts.Changes); err != nil {
		return nil, err
	}
	if opts.Pause && c.State.Running && !c.State.Paused {
		rt := s.runtimeFor(c)
		if err := rt.Pause(ctx, c.ID); err == nil {
			defer rt.Resume(ctx, c.ID)
		}
	}
	lowers := []string{s.snaps.InitDir(c.ID)}
	chains := c.chainIDs()
	for i := len(chains) - 1; i >= 0; i-- {
		lowers = append(lowers, s.snaps.Dir(chains[i]))
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(layer.Diff(ctx, pw, s.snaps.UpperDir(c.ID), lowers)) }()
	var parent digest.Digest
	if len(chains) > 0 {
		parent = chains[len(chains)-1]
	}
	// One lease across the layer and the image: a concurrent rmi or prune
	// collects neither in between.
	var img *image.Image
	err = s.images.WithLease(ctx, func(ctx context.Context) error {
		l, err := s.images.AddLayerOn(ctx, parent, pr)
		pr.Close()
		if err != nil {
			return err
		}
		imgRec, err := s.images.Resolve(ctx, c.Image)
		if err != nil {
			return err
		}
		now := time.Now().UTC()
		cfg.Created = &now
		cfg.Author = opts.Author
		cfg.Comment = opts.Message
		cfg.Container = c.ID
		cfg.RootFS.DiffIDs = append(append([]digest.Digest{}, cfg.RootFS.DiffIDs...), l.DiffID)
		cfg.History = append(append([]image.History{}, cfg.History...), image.History{
			Created: &now, Author: opts.Author, Comment: opts.Message,
			CreatedBy: strings.Join(append([]string{c.Path}, c.Args...), " "),
		})
		layers := append(append([]image.Layer{}, imgRec.Layers...), l)
		img, err = s.images.Create(ctx, &cfg, layers, target, imgRec.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.Emit(ctx, ContainerEvent(c, "commit"))
	return img, nil
}

// commitConfig is the image config a commit records: the container's own
// settings (docker keeps its env, cmd, entrypoint, workdir, user, labels).
func commitConfig(base image.ContainerSpec, cc Config) image.ContainerSpec {
	out := base
	out.Env = cc.Env
	out.Cmd = cc.Cmd
	out.Entrypoint = cc.Entrypoint
	out.WorkingDir = cc.WorkingDir
	out.User = cc.User
	out.Labels = cc.Labels
	out.ExposedPorts = cc.ExposedPorts
	out.StopSignal = cc.StopSignal
	out.Healthcheck = cc.Healthcheck
	out.Hostname = ""
	return out
}

// CopyOptions are `cp` flags.
type CopyOptions struct {
	Archive    bool // keep uid/gid; otherwise files belong to root at the destination
	FollowLink bool // -L: copy what a source symlink points to
}

// CopyFromContainer writes a tar of the container's srcPath to w: its base
// name as the top entry, or a directory's contents when srcPath ends in
// "/.". A symlink is archived as the link it is (docker's semantics), and
// followed, inside the container's root, only with FollowLink or a
// trailing "/" or "/.".
func (s *Service) CopyFromContainer(ctx context.Context, ref, srcPath string, opts CopyOptions, w io.Writer) (isDir bool, err error) {
	c, err := s.Get(ctx, ref)
	if err != nil {
		return false, err
	}
	err = s.withRoot(ctx, c, true, func(rootfd int) error {
		fd, st, err := statIn(rootfd, srcPath, ref, opts.FollowLink || followsTrailing(srcPath))
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		isDir = st.Mode&unix.S_IFMT == unix.S_IFDIR
		if !isDir && followsTrailing(srcPath) {
			return errdefs.InvalidArgument("%s is not a directory in container %s", srcPath, ref)
		}
		name := path.Base(path.Clean("/" + srcPath))
		if strings.HasSuffix(srcPath, "/.") || name == "/" {
			name = ""
		}
		return layer.WriteTarFD(ctx, w, fd, layer.TarOptions{Name: name, RootOwner: !opts.Archive})
	})
	return isDir, err
}

// followsTrailing tells a path that names a directory by its form ("dir/",
// "dir/."), which resolves a final symlink, as docker does.
func followsTrailing(p string) bool {
	return strings.HasSuffix(p, "/") || strings.HasSuffix(p, "/.")
}

// CopyToContainer extracts the tar r into the container directory dstDir.
// dstDir is resolved once inside the container's root (symlinks included,
// as docker follows them, but never out of the root); the extraction then
// happens relative to that directory's descriptor and never goes through a
// symlink, so a container racing the copy cannot redirect it.
func (s *Service) CopyToContainer(ctx context.Context, ref, dstDir string, r io.Reader) error {
	c, err := s.Get(ctx, ref)
	if err != nil {
		return err
	}
	if c.HostConfig.ReadonlyRootfs {
		return errdefs.Forbidden("container rootfs is marked read-only")
	}
	return s.withRoot(ctx, c, true, func(rootfd int) error {
		fd, st, err := statIn(rootfd, dstDir, ref, true)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return errdefs.InvalidArgument("extraction point is not a directory: %s", dstDir)
		}
		// A cp archive is not an image layer: ".wh." names are plain
		// files, and a directory is never replaced by a file (its tree
		// may hold the container's mount points).
		_, err = layer.ApplyAt(ctx, fd, r, layer.ApplyOptions{LiteralWhiteouts: true, KeepDirs: true})
		if errors.Is(err, unix.EROFS) {
			return errdefs.Forbidden("mounted volume is marked read-only: %s in container %s (%v)", dstDir, ref, err)
		}
		return err
	})
}

// PathStat is what StatInContainer reports: the file a path leads to and,
// when the path itself is a symlink, the in-root path its chain of links
// ends at (docker's LinkTarget).
type PathStat struct {
	fs.FileInfo
	LinkTarget string
}

// StatInContainer reports on path inside the container (for cp's rules),
// following a final symlink (inside the container's root) if follow or if
// the path ends in "/" or "/.".
func (s *Service) StatInContainer(ctx context.Context, ref, p string, follow bool) (*PathStat, error) {
	c, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	var ps *PathStat
	err = s.withRoot(ctx, c, true, func(rootfd int) error {
		follow := follow || followsTrailing(p)
		fd, st, err := statIn(rootfd, p, ref, follow)
		if err != nil {
			return err
		}
		unix.Close(fd)
		ps = &PathStat{FileInfo: statInfo{name: path.Base(path.Clean("/" + p)), st: *st}}
		if follow {
			ps.LinkTarget, err = linkTarget(rootfd, p)
		}
		return err
	})
	return ps, err
}

// linkTarget follows the chain of symlinks at p's last component, inside
// the root, and returns the in-root path it ends at ("" if p is no
// symlink). Relative targets are joined lexically, as docker's client
// does; every step is resolved again inside the root, so the string never
// reaches the host.
func linkTarget(rootfd int, p string) (string, error) {
	cur := path.Clean("/" + p)
	for range 40 {
		fd, err := openIn(rootfd, cur, false)
		if err != nil {
			return cur, nil // dangling: the path the chain names
		}
		var st unix.Stat_t
		err = unix.Fstatat(fd, "", &st, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW)
		if err != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK {
			unix.Close(fd)
			if cur == path.Clean("/"+p) {
				return "", err
			}
			return cur, err
		}
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(fd, "", buf)
		unix.Close(fd)
		if err != nil {
			return "", err
		}
		target := string(buf[:n])
		if path.IsAbs(target) {
			cur = path.Clean(target)
		} else {
			cur = path.Join(path.Dir(cur), target)
		}
	}
	return "", unix.ELOOP
}

// statInfo is an fs.FileInfo of a unix.Stat_t.
type statInfo struct {
	name string
	st   unix.Stat_t
}

func (i statInfo) Name() string       { return i.name }
func (i statInfo) Size() int64        { return i.st.Size }
func (i statInfo) ModTime() time.Time { return time.Unix(i.st.Mtim.Unix()) }
func (i statInfo) IsDir() bool        { return i.st.Mode&unix.S_IFMT == unix.S_IFDIR }
func (i statInfo) Sys() any           { return &i.st }
func (i statInfo) Mode() fs.FileMode {
	m := fs.FileMode(i.st.Mode & 0o777)
	switch i.st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	case unix.S_IFCHR:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		m |= fs.ModeDevice
	case unix.S_IFIFO:
		m |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		m |= fs.ModeSocket
	}
	return m
}

// TarPath writes a tar of a host path for CopyToContainer, with cp's
// naming: its top entry is called name ("" puts a directory's contents at
// the top). A symlink is archived as a link; the caller resolves it first
// for -L.
func TarPath(ctx context.Context, w io.Writer, src, name string, archive bool) error {
	fd, err := unix.Open(src, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return errdefs.InvalidArgument("could not find the file %s: %v", src, err)
	}
	defer unix.Close(fd)
	return layer.WriteTarFD(ctx, w, fd, layer.TarOptions{Name: name, RootOwner: !archive})
}

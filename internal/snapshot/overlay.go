// Package snapshot keeps extracted image layers as read-only directories keyed
// by chain ID, and stacks them with overlayfs under a per-container upper and
// work dir. A layer shared by many images is extracted and stored once.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/fsutil"
)

// Snapshotter manages layer snapshots under <root>/snapshots and container
// layers under <root>/containers.
type Snapshotter struct {
	root string
	sync *syncer
}

// New returns a snapshotter rooted at root (berth's --root).
func New(root string) (*Snapshotter, error) {
	for _, d := range []string{"snapshots", filepath.Join("snapshots", linkDir), "containers"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("snapshotter: %w", err)
		}
	}
	return &Snapshotter{root: root, sync: newSyncer()}, nil
}

// Dir is the extracted tree of the layer snapshot chainID.
func (s *Snapshotter) Dir(chainID digest.Digest) string {
	return filepath.Join(s.root, "snapshots", chainID.Encoded(), "fs")
}

// Exists reports whether the snapshot chainID has been committed.
func (s *Snapshotter) Exists(chainID digest.Digest) bool {
	_, err := os.Stat(s.Dir(chainID))
	return err == nil
}

// Prepare fills a fresh directory with extract, which returns the chain ID
// of what it wrote, and commits it as that snapshot. The directory becomes
// visible only once extract has succeeded (atomic rename). When the snapshot
// already exists (another process made it meanwhile) the new copy is dropped.
// Callers that know the chain ID beforehand check Exists first.
func (s *Snapshotter) Prepare(ctx context.Context, extract func(dir string) (digest.Digest, error)) (chainID digest.Digest, created bool, err error) {
	tmp, err := os.MkdirTemp(filepath.Join(s.root, "snapshots"), fmt.Sprintf("tmp-%d-", os.Getpid()))
	if err != nil {
		return "", false, err
	}
	defer os.RemoveAll(tmp)
	fsDir := filepath.Join(tmp, "fs")
	if err := os.Mkdir(fsDir, 0o755); err != nil {
		return "", false, err
	}
	chainID, err = extract(fsDir)
	if err != nil {
		return "", false, err
	}
	if err := chainID.Validate(); err != nil {
		return "", false, errdefs.InvalidArgument("invalid chain ID %q: %v", chainID, err)
	}
	if err := ctx.Err(); err != nil {
		return "", false, err
	}
	if s.Exists(chainID) {
		return chainID, false, nil
	}
	// Make the snapshot durable before it becomes visible: one syncfs of
	// the store's filesystem (shared with concurrent extractions) instead
	// of an fsync per file.
	if err := s.syncDir(tmp); err != nil {
		return "", false, fmt.Errorf("commit snapshot %s: %w", chainID, err)
	}
	final := filepath.Join(s.root, "snapshots", chainID.Encoded())
	if err := os.Rename(tmp, final); err != nil {
		if s.Exists(chainID) {
			return chainID, false, s.ensureLink(chainID)
		}
		return "", false, fmt.Errorf("commit snapshot %s: %w", chainID, err)
	}
	return chainID, true, s.ensureLink(chainID)
}

func (s *Snapshotter) syncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := s.sync.sync(fd); err != nil {
		return fmt.Errorf("syncfs: %w", err)
	}
	return nil
}

// Remove deletes the snapshot chainID; the caller makes sure nothing uses it.
func (s *Snapshotter) Remove(chainID digest.Digest) error {
	trash, err := s.Trash(chainID)
	if err != nil || trash == "" {
		return err
	}
	return fsutil.RemoveAll(trash)
}

// Trash moves the snapshot chainID aside (one rename, so that a
// half-removed snapshot is never taken as whole) and returns where it went
// for Sweep, or "" when there was no such snapshot. Garbage collection
// trashes inside its metadata transaction and sweeps after it.
func (s *Snapshotter) Trash(chainID digest.Digest) (string, error) {
	if err := chainID.Validate(); err != nil {
		return "", errdefs.InvalidArgument("invalid chain ID %q: %v", chainID, err)
	}
	dir := filepath.Join(s.root, "snapshots", chainID.Encoded())
	// A unique name: the same chain may be made and trashed again before
	// an earlier trash of it is swept.
	trash, err := os.MkdirTemp(filepath.Join(s.root, "snapshots"), fmt.Sprintf("rm-%d-%s-", os.Getpid(), chainID.Encoded()[:12]))
	if err != nil {
		return "", err
	}
	// unix.Rename: os.Rename refuses to replace the empty directory.
	if err := unix.Rename(dir, trash); err != nil {
		os.Remove(trash)
		if errors.Is(err, fs.ErrNotExist) {
			s.removeLink(chainID)
			return "", nil
		}
		return "", err
	}
	s.removeLink(chainID)
	return trash, nil
}

// Restore puts a snapshot Trash moved back (its collection was called
// off). When the chain was made again meanwhile, the trashed copy is
// dropped.
func (s *Snapshotter) Restore(name string, chainID digest.Digest) error {
	if err := chainID.Validate(); err != nil {
		return errdefs.InvalidArgument("invalid chain ID %q: %v", chainID, err)
	}
	if err := os.Rename(name, filepath.Join(s.root, "snapshots", chainID.Encoded())); err != nil {
		if s.Exists(chainID) {
			return fsutil.RemoveAll(name)
		}
		return err
	}
	return s.ensureLink(chainID)
}

// Sweep deletes trashed snapshots: those named, or when names is nil what
// processes that died left: their trash and their half-extracted layers
// (the entries carry their pid).
func (s *Snapshotter) Sweep(names []string) error {
	if names == nil {
		ents, err := os.ReadDir(filepath.Join(s.root, "snapshots"))
		if err != nil {
			return err
		}
		for _, e := range ents {
			if fsutil.OwnerDead(e.Name(), "rm-") || fsutil.OwnerDead(e.Name(), "tmp-") {
				names = append(names, filepath.Join(s.root, "snapshots", e.Name()))
			}
		}
	}
	var errs []error
	for _, n := range names {
		if err := fsutil.RemoveAll(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// List returns the chain IDs of all committed snapshots.
func (s *Snapshotter) List() ([]digest.Digest, error) {
	ents, err := os.ReadDir(filepath.Join(s.root, "snapshots"))
	if err != nil {
		return nil, err
	}
	var out []digest.Digest
	for _, e := range ents {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if d.Validate() == nil {
			out = append(out, d)
		}
	}
	return out, nil
}

// CleanupTemp removes leftovers of interrupted Prepare and Remove calls.
func (s *Snapshotter) CleanupTemp() {
	ents, _ := os.ReadDir(filepath.Join(s.root, "snapshots"))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "tmp-") || strings.HasPrefix(e.Name(), "rm-") {
			fsutil.RemoveAll(filepath.Join(s.root, "snapshots", e.Name()))
		}
	}
}

// ContainerDir holds a container's writable layer: upper and work dirs.
func (s *Snapshotter) ContainerDir(id string) string {
	return filepath.Join(s.root, "containers", id)
}

// UpperDir is the container's writable layer.
func (s *Snapshotter) UpperDir(id string) string {
	return filepath.Join(s.ContainerDir(id), "upper")
}

// initPaths are the mount points every container needs. They live in a
// per-container init layer between the image and the writable layer (as in
// docker), so that the runtime creating them does not show up in the
// container's diff, commit or export as changes of its own.
// /.dockerenv is no mount point: it is the empty file (mode 0755, as
// Docker makes it) by which tools tell that they run in a container.
var initPaths = []struct {
	path string
	dir  bool
	mode os.FileMode
}{
	{"dev", true, 0o755}, {"proc", true, 0o755}, {"sys", true, 0o755}, {"etc", true, 0o755},
	{"etc/hosts", false, 0o644}, {"etc/hostname", false, 0o644}, {"etc/resolv.conf", false, 0o644},
	{".dockerenv", false, 0o755},
}

// CreateContainerLayer makes the init layer and the upper and work dirs of
// container id.
func (s *Snapshotter) CreateContainerLayer(id string) error {
	for _, d := range []string{"upper", "work", "init"} {
		if err := os.MkdirAll(filepath.Join(s.ContainerDir(id), d), 0o755); err != nil {
			return err
		}
	}
	for _, p := range initPaths {
		full := filepath.Join(s.ContainerDir(id), "init", p.path)
		if p.dir {
			if err := os.Mkdir(full, p.mode); err != nil && !os.IsExist(err) {
				return err
			}
			continue
		}
		f, err := os.OpenFile(full, os.O_CREATE|os.O_WRONLY, p.mode)
		if err != nil {
			return err
		}
		// The umask must not narrow the mode Docker gives the file.
		err = f.Chmod(p.mode)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// InitDir is the init layer of container id.
func (s *Snapshotter) InitDir(id string) string { return filepath.Join(s.ContainerDir(id), "init") }

// MountOptions tune Mount.
type MountOptions struct {
	// Volatile skips every sync of the writable layer (overlayfs'
	// "volatile"): for containers removed when they exit (--rm), whose
	// writes need not survive a crash. It saves the sync that unmounting
	// an overlay otherwise costs.
	Volatile bool
}

// Mount stacks the snapshots chainIDs (bottom layer first, as in an image's
// rootfs) under container id's upper dir at target. See mount_linux.go for
// how the layers are named to the kernel.
func (s *Snapshotter) Mount(id string, chainIDs []digest.Digest, target string, mo ...MountOptions) error {
	if len(chainIDs) == 0 {
		return errdefs.InvalidArgument("image has no layers")
	}
	if mounted, _ := IsMountPoint(target); mounted {
		return nil
	}
	volatile := len(mo) > 0 && mo[0].Volatile
	return s.mountOverlay(id, chainIDs, target, volatile)
}

// Unmount detaches a container rootfs; an unmounted target is fine.
func Unmount(target string) error {
	for range 50 {
		err := unix.Unmount(target, unix.MNT_DETACH)
		switch err {
		case nil:
			continue // stacked mounts: repeat until none is left
		case unix.EINVAL, unix.ENOENT:
			return nil
		case unix.EINTR:
			continue
		default:
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
	return nil
}

// RemoveContainerLayer deletes container id's writable layer. The
// container built that tree: it may be nested far deeper than a
// descriptor per level allows (os.RemoveAll), and it must be removed all
// the same.
func (s *Snapshotter) RemoveContainerLayer(id string) error {
	return fsutil.RemoveAll(s.ContainerDir(id))
}

// IsMountPoint reports whether path is a mount point, comparing its device
// with its parent's (overlay mounts always get a device of their own).
func IsMountPoint(path string) (bool, error) {
	var st, pst unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return false, err
	}
	if err := unix.Lstat(filepath.Dir(path), &pst); err != nil {
		return false, err
	}
	return st.Dev != pst.Dev || st.Ino == pst.Ino, nil
}

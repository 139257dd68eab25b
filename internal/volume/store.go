// Package volume manages named volumes: directories under <root>/volumes
// whose records live in the metadata store. Containers reference them by
// name; a volume in use cannot be removed.
package volume

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/fsutil"
	"github.com/berth-dev/berth/internal/metadata"
)

// Volume is docker's volume inspect shape.
type Volume struct {
	Name       string            `json:"Name"`
	Driver     string            `json:"Driver"`
	Mountpoint string            `json:"Mountpoint"`
	CreatedAt  time.Time         `json:"CreatedAt"`
	Labels     map[string]string `json:"Labels"`
	Scope      string            `json:"Scope"`
	Options    map[string]string `json:"Options"`
	Anonymous  bool              `json:"-"`
}

type record struct {
	Volume
	Anonymous bool `json:"anonymous,omitempty"`
}

// Store is the volume service.
type Store struct {
	root string
	meta *metadata.Store
	// removeTree deletes a volume's tree once it is in the trash (a seam
	// for tests).
	removeTree func(dir string) error
	users      Users
}

// Users tells which containers mount a volume. The container package
// keeps the container records; the volume store asks it rather than
// reading them. It answers inside the caller's metadata transaction, so
// that no container starts using the volume before a removal commits.
type Users interface {
	VolumeUsersTx(tx *metadata.Tx, name string) []string
}

// NewStore returns a volume store keeping data under root/volumes; users
// answers which containers mount a volume (the container package's).
func NewStore(root string, meta *metadata.Store, users Users) *Store {
	return &Store{root: filepath.Join(root, "volumes"), meta: meta, removeTree: fsutil.RemoveAll, users: users}
}

// validName reports whether s matches docker's name rule
// [a-zA-Z0-9][a-zA-Z0-9_.-]+ (checked by hand: no regexp to compile at
// every start of berth).
func validName(s string) bool {
	if len(s) < 2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return true
}

// path is where volume name keeps its data. Only names that validName
// accepts reach it: they have no "/" and cannot be "." or "..", so the
// path stays one level below the volumes directory.
func (s *Store) path(name string) string { return filepath.Join(s.root, name, "_data") }

// CreateOptions are `volume create`'s flags.
type CreateOptions struct {
	Name   string
	Labels map[string]string
	Driver string
	Opts   map[string]string
}

// Create makes a volume; creating an existing one returns it, like docker.
func (s *Store) Create(ctx context.Context, opts CreateOptions) (*Volume, error) {
	if opts.Driver != "" && opts.Driver != "local" {
		return nil, errdefs.InvalidArgument("volume driver %q is not supported: only \"local\"", opts.Driver)
	}
	if len(opts.Opts) > 0 {
		return nil, errdefs.InvalidArgument("volume options are not supported by the local driver yet")
	}
	v, _, err := s.ensure(ctx, opts.Name, false, opts.Labels)
	return v, err
}

// Ensure implements container.VolumeStore.
func (s *Store) Ensure(ctx context.Context, name string, anonymous bool) (string, bool, error) {
	v, created, err := s.ensure(ctx, name, anonymous, nil)
	if err != nil {
		return "", false, err
	}
	return v.Mountpoint, created, nil
}

func (s *Store) ensure(ctx context.Context, name string, anonymous bool, labels map[string]string) (*Volume, bool, error) {
	if !validName(name) {
		return nil, false, errdefs.InvalidArgument("%q includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path", name)
	}
	var out record
	created := false
	err := s.meta.Update(ctx, func(tx *metadata.Tx) error {
		if tx.Get(metadata.BucketVolumes, name, &out) == nil {
			return nil
		}
		if err := os.MkdirAll(s.path(name), 0o755); err != nil {
			return err
		}
		if labels == nil {
			labels = map[string]string{}
		}
		out = record{Volume: Volume{
			Name: name, Driver: "local", Mountpoint: s.path(name), CreatedAt: time.Now().UTC().Truncate(time.Second),
			Labels: labels, Scope: "local", Options: map[string]string{},
		}, Anonymous: anonymous}
		created = true
		return tx.Put(metadata.BucketVolumes, name, &out)
	})
	if err != nil {
		return nil, false, err
	}
	out.Volume.Anonymous = out.Anonymous
	return &out.Volume, created, nil
}

// Get returns a volume.
func (s *Store) Get(ctx context.Context, name string) (*Volume, error) {
	var r record
	err := s.meta.View(ctx, func(tx *metadata.Tx) error {
		if tx.Get(metadata.BucketVolumes, name, &r) != nil {
			return errdefs.NotFound("no such volume: %s", name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.Volume.Anonymous = r.Anonymous
	return &r.Volume, nil
}

// List returns all volumes sorted by name.
func (s *Store) List(ctx context.Context) ([]*Volume, error) {
	var out []*Volume
	err := s.meta.View(ctx, func(tx *metadata.Tx) error {
		return tx.ForEach(metadata.BucketVolumes, func(_ string, raw []byte) error {
			var r record
			if err := json.Unmarshal(raw, &r); err != nil {
				return err
			}
			r.Volume.Anonymous = r.Anonymous
			out = append(out, &r.Volume)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// Remove deletes a volume and its data; a volume in use is refused even
// with force (force only ignores a missing volume), like docker. The
// record goes and the tree moves to the trash in one transaction; the
// tree is deleted after it, so no other berth process waits on the walk.
func (s *Store) Remove(ctx context.Context, name string, force bool) error {
	if !validName(name) {
		if force {
			return nil
		}
		return errdefs.NotFound("get %s: no such volume", name)
	}
	s.emptyTrash()
	var trashed string
	err := s.meta.Update(ctx, func(tx *metadata.Tx) error {
		if !tx.Has(metadata.BucketVolumes, name) {
			if force {
				return nil
			}
			return errdefs.NotFound("get %s: no such volume", name)
		}
		if users := s.users.VolumeUsersTx(tx, name); len(users) > 0 {
			return errdefs.Conflict("remove %s: volume is in use - [%s]", name, users[0])
		}
		if err := tx.Delete(metadata.BucketVolumes, name); err != nil {
			return err
		}
		var err error
		trashed, err = s.toTrash(name)
		return err
	})
	if err != nil {
		s.fromTrash(trashed, name)
		return err
	}
	if trashed != "" {
		return s.removeTree(trashed)
	}
	return nil
}

// Prune removes unused volumes: anonymous ones only unless all is set
// (docker 23+ semantics). It returns the names removed and bytes reclaimed.
// Like Remove, it deletes the trees after its transaction.
func (s *Store) Prune(ctx context.Context, all bool, labelFilter func(map[string]string) bool) ([]string, int64, error) {
	s.emptyTrash()
	var removed, trashed []string
	err := s.meta.Update(ctx, func(tx *metadata.Tx) error {
		removed, trashed = nil, nil
		var candidates []record
		tx.ForEach(metadata.BucketVolumes, func(_ string, raw []byte) error {
			var r record
			if json.Unmarshal(raw, &r) == nil {
				candidates = append(candidates, r)
			}
			return nil
		})
		for _, r := range candidates {
			if !validName(r.Name) || (!all && !r.Anonymous) || len(s.users.VolumeUsersTx(tx, r.Name)) > 0 {
				continue
			}
			if labelFilter != nil && !labelFilter(r.Labels) {
				continue
			}
			if err := tx.Delete(metadata.BucketVolumes, r.Name); err != nil {
				return err
			}
			dir, err := s.toTrash(r.Name)
			if err != nil {
				return err
			}
			removed = append(removed, r.Name)
			trashed = append(trashed, dir)
		}
		return nil
	})
	if err != nil {
		for i, dir := range trashed {
			s.fromTrash(dir, removed[i])
		}
		return nil, 0, err
	}
	var reclaimed int64
	var errs []error
	for _, dir := range trashed {
		reclaimed += DirSize(dir)
		errs = append(errs, s.removeTree(dir))
	}
	return removed, reclaimed, errors.Join(errs...)
}

// maxSizeDepth bounds how deep DirSize descends: it holds a descriptor
// per level, and a container can nest directories without limit.
const maxSizeDepth = 1024

// DirSize sums the sizes of regular files under dir (a volume or a
// container's writable layer). A container owns everything below dir and
// may swap a directory for a symlink while the walk runs, so the walk goes
// by descriptors: each entry is looked at and each directory opened
// relative to its parent's descriptor, never following a symlink; a
// directory swapped for one is skipped, never walked on the host.
func DirSize(dir string) int64 {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	var n int64
	sizeBelow(fd, 0, &n)
	return n
}

// sizeBelow adds the sizes of the regular files below the directory open
// as fd to *n, and closes fd.
func sizeBelow(fd, depth int, n *int64) {
	d := os.NewFile(uintptr(fd), "")
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	for _, name := range names {
		var st unix.Stat_t
		if unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
			continue // gone meanwhile
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			*n += st.Size
		case unix.S_IFDIR:
			if depth >= maxSizeDepth {
				continue
			}
			// O_NOFOLLOW: if the directory became a symlink since the
			// fstatat, the open fails instead of leaving the tree.
			child, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err == nil {
				sizeBelow(child, depth+1, n)
			}
		}
	}
}

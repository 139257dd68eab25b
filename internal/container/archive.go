package container

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/layer"
	"github.com/berth-dev/berth/internal/snapshot"
)

// withRootfs calls fn with a path at which the container's filesystem can
// be read and written: the running container's own root (volumes included)
// or, for a stopped one, its layers mounted for the duration of fn.
func (s *Service) withRootfs(ctx context.Context, c *Container, fn func(root string) error) error {
	if c.State.Running && c.State.Pid > 0 {
		return fn(fmt.Sprintf("/proc/%d/root", c.State.Pid))
	}
	target := s.RootfsDir(c.ID)
	if mounted, _ := snapshot.IsMountPoint(target); mounted {
		return fn(target)
	}
	if err := os.MkdirAll(s.BundleDir(c.ID), 0o700); err != nil {
		return err
	}
	if err := s.snaps.Mount(c.ID, c.chainIDs(), target); err != nil {
		return err
	}
	defer snapshot.Unmount(target)
	return fn(target)
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
	return s.withRootfs(ctx, c, func(root string) error {
		if c.State.Running {
			// The overlay mount, not /proc/<pid>/root: export leaves volumes out.
			root = s.RootfsDir(c.ID)
		}
		return layer.WriteTar(ctx, w, root)
	})
}

// Change is one line of `docker diff`.
type Change struct {
	Kind string // "A", "C", "D"
	Path string
}

// Changes lists what the container changed relative to its image.
func (s *Service) Changes(ctx context.Context, ref string) ([]Change, error) {
	c, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	upper := s.snaps.UpperDir(c.ID)
	lowers := c.chainIDs()
	inLower := func(rel string) bool {
		if _, err := os.Lstat(filepath.Join(s.snaps.InitDir(c.ID), rel)); err == nil {
			return true
		}
		for _, ch := range lowers {
			if _, err := os.Lstat(filepath.Join(s.snaps.Dir(ch), rel)); err == nil {
				return true
			}
		}
		return false
	}
	var out []Change
	err = filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(upper, p)
		if rel == "." {
			return nil
		}
		path := "/" + rel
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && info.Mode()&fs.ModeCharDevice != 0 && st.Rdev == 0 {
			out = append(out, Change{"D", path}) // an overlay whiteout
			return nil
		}
		if inLower(rel) {
			out = append(out, Change{"C", path})
		} else {
			out = append(out, Change{"A", path})
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
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
	l, err := s.images.AddLayerOn(ctx, parent, pr)
	pr.Close()
	if err != nil {
		return nil, err
	}
	imgRec, err := s.images.Resolve(ctx, c.Image)
	if err != nil {
		return nil, err
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
	img, err := s.images.Create(ctx, &cfg, layers, target, imgRec.ID)
	if err != nil {
		return nil, err
	}
	s.Emit(ctx, Event{Type: "container", Action: "commit", ID: c.ID, Attributes: map[string]string{"name": c.ShortName(), "image": c.Config.Image}})
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

// CopyFromContainer writes a tar of the container's srcPath (its base name
// as the top entry, or its contents when srcPath ends in "/.") to w.
func (s *Service) CopyFromContainer(ctx context.Context, ref, srcPath string, opts CopyOptions, w io.Writer) (isDir bool, err error) {
	c, err := s.Get(ctx, ref)
	if err != nil {
		return false, err
	}
	err = s.withRootfs(ctx, c, func(root string) error {
		p, info, err := resolveIn(root, srcPath, opts.FollowLink)
		if err != nil {
			return err
		}
		isDir = info.IsDir()
		name := filepath.Base(filepath.Clean("/" + srcPath))
		if strings.HasSuffix(srcPath, "/.") {
			name = ""
		}
		return renamedTar(ctx, w, p, name, !opts.Archive)
	})
	return isDir, err
}

// CopyToContainer extracts the tar r into the container directory dstDir,
// refusing anything that would land outside the container.
func (s *Service) CopyToContainer(ctx context.Context, ref, dstDir string, r io.Reader) error {
	c, err := s.Get(ctx, ref)
	if err != nil {
		return err
	}
	if c.HostConfig.ReadonlyRootfs {
		return errdefs.Forbidden("container rootfs is marked read-only")
	}
	return s.withRootfs(ctx, c, func(root string) error {
		p, info, err := resolveIn(root, dstDir, true)
		if err != nil {
			return err
		}
		if !info.IsDir() {
			return errdefs.InvalidArgument("extraction point is not a directory: %s", dstDir)
		}
		// A cp archive is not an image layer: ".wh." names are plain files.
		_, err = layer.ApplyWithOptions(ctx, p, r, layer.ApplyOptions{LiteralWhiteouts: true})
		return err
	})
}

// StatInContainer reports on path inside the container (for cp's rules).
func (s *Service) StatInContainer(ctx context.Context, ref, path string) (fs.FileInfo, error) {
	c, err := s.Get(ctx, ref)
	if err != nil {
		return nil, err
	}
	var info fs.FileInfo
	err = s.withRootfs(ctx, c, func(root string) error {
		_, info, err = resolveIn(root, path, true)
		return err
	})
	return info, err
}

// resolveIn resolves path inside root, symlinks included, never leaving root.
func resolveIn(root, path string, follow bool) (string, fs.FileInfo, error) {
	clean := filepath.Clean("/" + path)
	dir, err := securejoin.SecureJoin(root, filepath.Dir(clean))
	if err != nil {
		return "", nil, err
	}
	p := filepath.Join(dir, filepath.Base(clean))
	if clean == "/" {
		p = root
	}
	info, err := os.Lstat(p)
	if err == nil && follow && info.Mode()&fs.ModeSymlink != 0 {
		if p, err = securejoin.SecureJoin(root, clean); err == nil {
			info, err = os.Lstat(p)
		}
	}
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil, errdefs.NotFound("Could not find the file %s in container", path)
		}
		return "", nil, err
	}
	return p, info, nil
}

// renamedTar writes a tar of src whose top entry is called name ("" puts a
// directory's contents at the top), optionally owned by root.
func renamedTar(ctx context.Context, w io.Writer, src, name string, toRoot bool) error {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(layer.WriteTar(ctx, pw, src)) }()
	defer pr.Close()
	info, err := os.Lstat(src)
	if err != nil {
		return err
	}
	tr := tar.NewReader(pr)
	tw := tar.NewWriter(w)
	rename := func(n string) string {
		if !info.IsDir() {
			if n == filepath.Base(src) {
				return name
			}
			return n
		}
		if name == "" {
			return n
		}
		return name + "/" + n
	}
	if info.IsDir() && name != "" {
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = name + "/"
		if toRoot {
			hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
	}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		hdr.Name = rename(hdr.Name)
		if hdr.Typeflag == tar.TypeLink {
			hdr.Linkname = rename(hdr.Linkname)
		}
		if toRoot {
			hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	return tw.Close()
}

// TarPath writes a tar of a host path for CopyToContainer, with cp's naming.
func TarPath(ctx context.Context, w io.Writer, src, name string, archive bool) error {
	return renamedTar(ctx, w, src, name, !archive)
}

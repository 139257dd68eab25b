package engine

import (
	"context"
	"io"
	"os"
	"time"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/layer"
)

// The filesystem use cases of Docker's API: GET/HEAD/PUT
// /containers/{id}/archive (cp), GET /containers/{id}/changes (diff),
// GET /containers/{id}/export, POST /commit, POST /images/create?fromSrc
// (import). Every path inside a container is resolved by the container
// service relative to a descriptor of the container's root.

// ContainerPathStat is Docker's stat of a path in a container (the
// X-Docker-Container-Path-Stat header of HEAD /containers/{id}/archive).
type ContainerPathStat struct {
	Name  string      `json:"name"`
	Size  int64       `json:"size"`
	Mode  os.FileMode `json:"mode"`
	Mtime time.Time   `json:"mtime"`
	// LinkTarget is, for a path that is a symlink followed, the in-root
	// path its chain of links ends at.
	LinkTarget string `json:"linkTarget"`
}

// IsDir reports whether the path is a directory.
func (s *ContainerPathStat) IsDir() bool { return s.Mode.IsDir() }

// ContainerStatPath stats path in the container, following a final
// symlink (inside the container's root) if follow or if path ends in "/"
// or "/.".
func (e *Engine) ContainerStatPath(ctx context.Context, ref, path string, follow bool) (*ContainerPathStat, error) {
	st, err := e.Containers.StatInContainer(ctx, ref, path, follow)
	if err != nil {
		return nil, err
	}
	return &ContainerPathStat{Name: st.Name(), Size: st.Size(), Mode: st.Mode(), Mtime: st.ModTime(), LinkTarget: st.LinkTarget}, nil
}

// ContainerArchiveRequest qualifies GET /containers/{id}/archive as `docker
// cp` asks for it.
type ContainerArchiveRequest struct {
	// FollowLink (-L) archives what a final symlink of the path points to.
	FollowLink bool
	// Archive (-a) keeps the files' owners in the tar; otherwise its
	// entries belong to root.
	Archive bool
}

// ContainerArchive writes a tar of path in the container to w: its base
// name as the top entry, or a directory's contents when path ends in
// "/.".
func (e *Engine) ContainerArchive(ctx context.Context, ref, path string, req ContainerArchiveRequest, w io.Writer) error {
	_, err := e.Containers.CopyFromContainer(ctx, ref, path, container.CopyOptions{FollowLink: req.FollowLink, Archive: req.Archive}, w)
	return err
}

// ContainerExtractToDir is PUT /containers/{id}/archive: it extracts the
// tar r into directory dir of the container.
func (e *Engine) ContainerExtractToDir(ctx context.Context, ref, dir string, r io.Reader) error {
	return e.Containers.CopyToContainer(ctx, ref, dir, r)
}

// ExtractArchive is the client side of `docker cp` out of a container:
// it extracts the tar r (from ContainerArchive) into the host directory
// dir, never following a link or replacing a directory; files belong to
// the caller unless archive (-a) keeps the tar's owners.
func ExtractArchive(ctx context.Context, dir string, r io.Reader, archive bool) error {
	_, err := layer.ApplyWithOptions(ctx, dir, r, layer.ApplyOptions{LiteralWhiteouts: true, NoLchown: !archive, KeepDirs: true})
	return err
}

// TarHostPath is the client side of `docker cp` into a container: it
// writes a tar of host path src (for ContainerExtractToDir) whose top
// entry is called name ("" puts a directory's contents at the top),
// owned by root unless archive (-a) keeps the owners.
func TarHostPath(ctx context.Context, w io.Writer, src, name string, archive bool) error {
	return container.TarPath(ctx, w, src, name, archive)
}

// FilesystemChange is one change of GET /containers/{id}/changes.
type FilesystemChange struct {
	Path string     `json:"Path"`
	Kind ChangeType `json:"Kind"`
}

// ChangeType is Docker's kind of change: 0 modified, 1 added, 2 deleted;
// it prints as docker diff's C, A, D.
type ChangeType uint8

// Docker's change kinds.
const (
	ChangeModify ChangeType = iota
	ChangeAdd
	ChangeDelete
)

func (k ChangeType) String() string {
	switch k {
	case ChangeAdd:
		return "A"
	case ChangeDelete:
		return "D"
	}
	return "C"
}

// ContainerChanges lists what the container changed relative to its image.
func (e *Engine) ContainerChanges(ctx context.Context, ref string) ([]FilesystemChange, error) {
	changes, err := e.Containers.Changes(ctx, ref)
	if err != nil {
		return nil, err
	}
	out := make([]FilesystemChange, len(changes))
	for i, ch := range changes {
		kind := ChangeModify
		switch ch.Kind {
		case "A":
			kind = ChangeAdd
		case "D":
			kind = ChangeDelete
		}
		out[i] = FilesystemChange{Path: ch.Path, Kind: kind}
	}
	return out, nil
}

// ContainerExport writes the container's filesystem (without its
// volumes) as a tar to w.
func (e *Engine) ContainerExport(ctx context.Context, ref string, w io.Writer) error {
	return e.Containers.Export(ctx, ref, w)
}

// ContainerCommitRequest is POST /commit: the container, the new image's
// reference (REPOSITORY[:TAG], optional) and the query's author, comment,
// changes (Dockerfile instructions) and pause.
type ContainerCommitRequest struct {
	Reference string
	Author    string
	Comment   string
	Changes   []string
	Pause     bool
}

// IDResponse is Docker's answer naming what was made (commit, import).
type IDResponse struct {
	ID string `json:"Id"`
}

// ContainerCommit makes an image of the container's changes.
func (e *Engine) ContainerCommit(ctx context.Context, ref string, req ContainerCommitRequest) (IDResponse, error) {
	img, err := e.Containers.Commit(ctx, ref, container.CommitOptions{
		Reference: req.Reference, Author: req.Author, Message: req.Comment, Changes: req.Changes, Pause: req.Pause,
	})
	if err != nil {
		return IDResponse{}, err
	}
	return IDResponse{ID: img.ID.String()}, nil
}

// ImageImportRequest is POST /images/create?fromSrc: the reference to tag
// (optional), the message, the Dockerfile changes, the platform, and the
// source's name for the history comment (a file name or "-").
type ImageImportRequest struct {
	Reference string
	Source    string
	Message   string
	Changes   []string
	Platform  string
}

// ImageImport makes a single-layer image from the filesystem tarball r
// (plain, gzip or zstd).
func (e *Engine) ImageImport(ctx context.Context, r io.Reader, req ImageImportRequest) (IDResponse, error) {
	img, err := e.Images.Import(ctx, r, image.ImportOptions{
		Reference: req.Reference, Source: req.Source, Message: req.Message, Changes: req.Changes, Platform: req.Platform,
	})
	if err != nil {
		return IDResponse{}, err
	}
	return IDResponse{ID: img.ID.String()}, nil
}

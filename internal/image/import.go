package image

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	goruntime "runtime"
	"time"

	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/layer"
	"github.com/berth-dev/berth/internal/metadata"
)

// ImportOptions are the flags of `berth import`.
type ImportOptions struct {
	Reference string   // optional REPOSITORY[:TAG]
	Changes   []string // --change
	Message   string   // --message
	Source    string   // shown in the history comment: a file name or "-"
	Platform  string
}

// Import creates a single-layer image from a filesystem tarball (plain,
// gzip or zstd), like `docker import`.
func (s *Store) Import(ctx context.Context, r io.Reader, opts ImportOptions) (*Image, error) {
	var tagRef string
	if opts.Reference != "" {
		tagged, err := ParseTag(opts.Reference)
		if err != nil {
			return nil, err
		}
		tagRef = tagged.String()
	}
	var spec ContainerSpec
	if err := ApplyChanges(&spec, opts.Changes); err != nil {
		return nil, err
	}
	l, err := s.AddLayer(ctx, r)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	comment := opts.Message
	if comment == "" {
		comment = "Imported from " + opts.Source
	}
	cfg := Config{
		Created:      &now,
		Architecture: goruntime.GOARCH,
		OS:           "linux",
		Config:       spec,
		RootFS:       RootFS{Type: "layers", DiffIDs: []digest.Digest{l.DiffID}},
		History:      []History{{Created: &now, Comment: comment}},
		Comment:      opts.Message,
	}
	return s.Create(ctx, &cfg, []Layer{l}, tagRef, "")
}

// AddLayer stores an image layer tar (plain, gzip or zstd): the uncompressed
// tar goes into the content store and is extracted once into a snapshot.
// The layer is the first of its image; stacked layers use AddLayerOn.
func (s *Store) AddLayer(ctx context.Context, r io.Reader) (Layer, error) {
	return s.AddLayerOn(ctx, "", r)
}

// AddLayerOn stores a layer whose parent chain is parent ("" for a base
// layer).
func (s *Store) AddLayerOn(ctx context.Context, parent digest.Digest, r io.Reader) (Layer, error) {
	plain, _, err := layer.DecompressStream(r)
	if err != nil {
		return Layer{}, errdefs.InvalidArgument("read layer: %v", err)
	}
	defer plain.Close()
	w, err := s.content.Writer()
	if err != nil {
		return Layer{}, err
	}
	defer w.Abort()
	var l Layer
	_, _, err = s.snaps.Prepare(ctx, func(dir string) (digest.Digest, error) {
		tee := io.TeeReader(plain, w)
		n, err := layer.Apply(ctx, dir, tee)
		if err != nil {
			return "", err
		}
		// The tar's end may be followed by padding that belongs to the blob.
		if _, err := io.Copy(io.Discard, tee); err != nil {
			return "", err
		}
		l.Size = n
		l.DiffID = w.Digest()
		l.ChainID = l.DiffID
		if parent != "" {
			l.ChainID = digest.FromString(parent.String() + " " + l.DiffID.String())
		}
		return l.ChainID, nil
	})
	if err != nil {
		return Layer{}, err
	}
	blob, size, err := w.Commit(l.DiffID)
	if err != nil {
		return Layer{}, err
	}
	l.Blob, l.BlobSize, l.MediaType = blob, size, MediaTypeImageLayer
	return l, nil
}

// Create stores cfg and an OCI manifest for layers, records the image and,
// when ref is set, tags it. The layers' snapshots must exist.
func (s *Store) Create(ctx context.Context, cfg *Config, layers []Layer, ref string, parent digest.Digest) (*Image, error) {
	rawCfg, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cfgDigest, err := s.content.PutBytes(rawCfg)
	if err != nil {
		return nil, err
	}
	manifest := Manifest{
		MediaType: MediaTypeImageManifest,
		Config:    Descriptor{MediaType: MediaTypeImageConfig, Digest: cfgDigest, Size: int64(len(rawCfg))},
	}
	manifest.SchemaVersion = 2
	var size int64
	for _, l := range layers {
		manifest.Layers = append(manifest.Layers, Descriptor{MediaType: l.MediaType, Digest: l.Blob, Size: l.BlobSize})
		size += l.Size
	}
	rawManifest, err := json.Marshal(manifest)
	if err != nil {
		return nil, err
	}
	manifestDigest, err := s.content.PutBytes(rawManifest)
	if err != nil {
		return nil, err
	}
	created := time.Now().UTC()
	if cfg.Created != nil {
		created = *cfg.Created
	}
	rec := Record{ID: cfgDigest, ManifestDigest: manifestDigest, Layers: layers, Created: created, Size: size, Parent: parent}
	img := &Image{Record: rec}
	err = s.meta.Update(ctx, func(tx *metadata.Tx) error {
		// Checked under the write lock: image removal deletes snapshots
		// under the same lock, so none can vanish between here and commit.
		for _, l := range layers {
			if !s.snaps.Exists(l.ChainID) {
				return fmt.Errorf("layer %s vanished while the image was being created (removed concurrently): try again", l.ChainID)
			}
		}
		var existing Record
		if tx.Get(metadata.BucketImages, rec.ID.String(), &existing) == nil {
			rec.RepoDigests = existing.RepoDigests
			rec.LastTagTime = existing.LastTagTime
		}
		if err := tx.Put(metadata.BucketImages, rec.ID.String(), rec); err != nil {
			return err
		}
		if ref != "" {
			if err := setTag(tx, ref, &rec); err != nil {
				return err
			}
		}
		img.RepoTags = tagsOf(tx, rec.ID)
		return nil
	})
	if err != nil {
		return nil, err
	}
	img.Record = rec
	return img, nil
}

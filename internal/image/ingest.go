package image

// The one way a layer enters the store (import, load, commit; the coming
// pull and build): its blob is kept exactly as it came (gzip, zstd or a
// plain tar) and extracted in the same pass. The bytes as they come are
// hashed (the blob digest a manifest names) and written to the content
// store's ingest area; the decompressed stream is hashed (the diff ID a
// config names) and applied into a fresh snapshot directory. Only when both
// digests (and the size) match what the caller was told are the snapshot
// and the blob committed; else nothing of the layer is left.
//
// Images are then created from a given manifest and configuration (kept
// byte for byte, so that save -> load -> save and, later, push send the
// same bytes), or from a configuration and the stored layers, for which an
// OCI manifest is written once.

import (
	"archive/tar"
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/layer"
	"github.com/berth-dev/berth/internal/metadata"
)

// LayerSource is what is known of a layer blob before it is read. Every
// field is optional; what is stated is verified.
type LayerSource struct {
	Parent    digest.Digest // chain ID of the layer below; "" for a base layer
	Blob      digest.Digest // digest of the blob as it comes (a manifest's)
	Size      int64         // size of the blob as it comes; 0 when not stated
	DiffID    digest.Digest // digest of the uncompressed tar (a config's)
	MediaType string        // the manifest's; "" to name the detected compression
}

// mediaTypeFor is the OCI layer media type of a compression.
func mediaTypeFor(c layer.Compression) string {
	switch c {
	case layer.Gzip:
		return MediaTypeImageLayerGzip
	case layer.Zstd:
		return MediaTypeImageLayerZstd
	}
	return MediaTypeImageLayer
}

func chainOf(parent, diffID digest.Digest) digest.Digest {
	if parent == "" {
		return diffID
	}
	return digest.FromString(parent.String() + " " + diffID.String())
}

// IngestLayer stores the layer r yields (see the top of this file). The
// layer's snapshot and blob stay protected by ctx's lease (WithLease) until
// an image references them. When the snapshot already exists (its diff ID
// stated), the blob is still stored and verified, but not extracted again.
func (s *Store) IngestLayer(ctx context.Context, r io.Reader, src LayerSource) (Layer, error) {
	var l Layer
	err := s.WithLease(ctx, func(ctx context.Context) error {
		var err error
		l, err = s.ingestLayer(ctx, r, src)
		return err
	})
	return l, err
}

func (s *Store) ingestLayer(ctx context.Context, r io.Reader, src LayerSource) (Layer, error) {
	extract := true
	if src.DiffID != "" {
		if err := src.DiffID.Validate(); err != nil {
			return Layer{}, errdefs.InvalidArgument("layer diff ID %q: %v", src.DiffID, err)
		}
		// Named in the lease before it is looked at: a collector either
		// sees the lease or has already taken the snapshot.
		chain := chainOf(src.Parent, src.DiffID)
		if err := s.protect(ctx, []digest.Digest{chain}, []digest.Digest{src.Blob}); err != nil {
			return Layer{}, err
		}
		extract = !s.snaps.Exists(chain)
	}
	w, err := s.content.Writer()
	if err != nil {
		return Layer{}, err
	}
	defer w.Abort()
	raw := io.TeeReader(ctxReader{ctx, r}, w)
	plain, comp, err := layer.DecompressStream(raw)
	if err != nil {
		return Layer{}, errdefs.InvalidArgument("read layer: %v", err)
	}
	defer plain.Close()
	diff := digest.NewDigester()
	stream := io.TeeReader(plain, diff)

	l := Layer{MediaType: src.MediaType}
	if l.MediaType == "" {
		l.MediaType = mediaTypeFor(comp)
	}
	// finish reads both streams to their ends (padding after the tar, and
	// whatever follows a compressed stream, belong to the blob), checks
	// what was stated and names the result in the lease.
	finish := func() error {
		if _, err := io.Copy(io.Discard, stream); err != nil {
			return errdefs.InvalidArgument("read layer: %v", err)
		}
		if _, err := io.Copy(io.Discard, raw); err != nil {
			return errdefs.InvalidArgument("read layer: %v", err)
		}
		l.DiffID = diff.Digest()
		if src.DiffID != "" && l.DiffID != src.DiffID {
			return errdefs.InvalidArgument("its content has digest %s, but the image configuration says %s (corrupt or tampered with)", l.DiffID, src.DiffID)
		}
		l.Blob, l.BlobSize = w.Digest(), w.Size()
		if src.Blob != "" && l.Blob != src.Blob {
			return errdefs.InvalidArgument("the blob has digest %s, but the manifest says %s (corrupt or tampered with)", l.Blob, src.Blob)
		}
		if src.Size > 0 && l.BlobSize != src.Size {
			return errdefs.InvalidArgument("the blob is %d bytes, but the manifest says %d (corrupt or tampered with)", l.BlobSize, src.Size)
		}
		l.ChainID = chainOf(src.Parent, l.DiffID)
		return s.protect(ctx, []digest.Digest{l.ChainID}, []digest.Digest{l.Blob})
	}

	if extract {
		_, _, err = s.snaps.Prepare(ctx, func(dir string) (digest.Digest, error) {
			n, err := layer.Apply(ctx, dir, stream)
			if err != nil {
				return "", err
			}
			l.Size = n
			if err := finish(); err != nil {
				return "", err
			}
			return l.ChainID, nil
		})
	} else {
		l.Size, err = contentSize(stream)
		if err == nil {
			err = finish()
		}
	}
	if err != nil {
		return Layer{}, err
	}
	if _, _, err := w.Commit(l.Blob); err != nil {
		return Layer{}, err
	}
	return l, nil
}

// contentSize reads a layer tar and sums its regular files, as Apply
// counts them, for a layer whose snapshot exists.
func contentSize(r io.Reader) (int64, error) {
	tr := tar.NewReader(r)
	var n int64
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return 0, errdefs.InvalidArgument("read layer: %v", err)
		}
		switch hdr.Typeflag {
		case tar.TypeReg:
			n += hdr.Size
		case tar.TypeSymlink:
			n += int64(len(hdr.Linkname)) // as layer.Apply counts it
		}
	}
}

// CreateOptions describe an image to record over stored layers.
type CreateOptions struct {
	// Config is the image configuration, kept byte for byte: its digest is
	// the image ID.
	Config []byte
	// Manifest is the image manifest as it came (a load's, a pull's); nil
	// to write an OCI manifest of Config and Layers.
	Manifest []byte
	// Layers are the stored layers, bottom first, as the manifest lists
	// them and the configuration's rootfs names them.
	Layers []Layer
	// Index is the index (manifest list) Manifest was picked from, as it
	// came; nil when there is none. It must list Manifest.
	Index []byte
	// RepoDigests are the repository@digest references the image is known
	// by (a pull's); they are added to those it has.
	RepoDigests []string
	Ref         string        // normalised tag to set; "" for none
	Parent      digest.Digest // the image this one was committed from
}

// CreateImage records an image from a configuration and a manifest (given
// or written), once both are checked against the layers.
func (s *Store) CreateImage(ctx context.Context, o CreateOptions) (*Image, error) {
	var img *Image
	err := s.WithLease(ctx, func(ctx context.Context) error {
		var err error
		img, err = s.createImage(ctx, o)
		return err
	})
	return img, err
}

func (s *Store) createImage(ctx context.Context, o CreateOptions) (*Image, error) {
	st, err := s.stageImage(ctx, o)
	if err != nil {
		return nil, err
	}
	img := &Image{}
	err = s.meta.Update(ctx, func(tx *metadata.Tx) error {
		rec, err := s.putImageTx(tx, st, false)
		if err != nil {
			return err
		}
		if o.Ref != "" {
			if err := setTag(tx, o.Ref, &rec); err != nil {
				return err
			}
		}
		img.Record = rec
		img.RepoTags = tagsOf(tx, rec.ID)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return img, nil
}

// stagedImage is an image whose documents are stored, ready to record.
type stagedImage struct {
	rec         Record
	repoDigests []string
}

// stageImage checks o (configuration against layers, manifest against
// both, index against manifest) and stores its documents under ctx's
// lease. Create and load share it.
func (s *Store) stageImage(ctx context.Context, o CreateOptions) (stagedImage, error) {
	var cfg Config
	if err := json.Unmarshal(o.Config, &cfg); err != nil {
		return stagedImage{}, errdefs.InvalidArgument("image configuration: %v", err)
	}
	if len(cfg.RootFS.DiffIDs) != len(o.Layers) {
		return stagedImage{}, errdefs.InvalidArgument("image configuration lists %d layers, but %d are given", len(cfg.RootFS.DiffIDs), len(o.Layers))
	}
	for i, d := range cfg.RootFS.DiffIDs {
		if o.Layers[i].DiffID != d {
			return stagedImage{}, errdefs.InvalidArgument("layer %d is %s, but the image configuration says %s", i, o.Layers[i].DiffID, d)
		}
	}
	id := digest.FromBytes(o.Config)
	mraw := o.Manifest
	if mraw == nil {
		var err error
		if mraw, err = buildManifest(o.Config, o.Layers); err != nil {
			return stagedImage{}, err
		}
	} else {
		var m Manifest
		if err := json.Unmarshal(mraw, &m); err != nil {
			return stagedImage{}, errdefs.InvalidArgument("image manifest: %v", err)
		}
		if !manifestDescribes(&m, id, o.Layers) {
			return stagedImage{}, errdefs.InvalidArgument("image manifest %s does not describe configuration %s and its layers", digest.FromBytes(mraw), id)
		}
	}
	mdigest := digest.FromBytes(mraw)
	docs := [][]byte{o.Config, mraw}
	var idigest digest.Digest
	if o.Index != nil {
		var idx Index
		if err := json.Unmarshal(o.Index, &idx); err != nil {
			return stagedImage{}, errdefs.InvalidArgument("image index: %v", err)
		}
		listed := false
		for _, d := range idx.Manifests {
			listed = listed || d.Digest == mdigest
		}
		if !listed {
			return stagedImage{}, errdefs.InvalidArgument("image index %s does not list manifest %s", digest.FromBytes(o.Index), mdigest)
		}
		idigest = digest.FromBytes(o.Index)
		docs = append(docs, o.Index)
	}
	for _, rd := range o.RepoDigests {
		if _, err := ParseReference(rd); err != nil || !strings.Contains(rd, "@") {
			return stagedImage{}, errdefs.InvalidArgument("repo digest %q: not a repository@digest reference", rd)
		}
	}
	if err := s.protect(ctx, nil, []digest.Digest{id, mdigest, idigest}); err != nil {
		return stagedImage{}, err
	}
	for _, b := range docs {
		if _, err := s.content.PutBytes(b); err != nil {
			return stagedImage{}, err
		}
	}
	created := time.Now().UTC()
	if cfg.Created != nil {
		created = *cfg.Created
	}
	rec := Record{ID: id, ManifestDigest: mdigest, IndexDigest: idigest, Layers: o.Layers, Created: created, Parent: o.Parent}
	for _, l := range o.Layers {
		rec.Size += l.Size
	}
	return stagedImage{rec: rec, repoDigests: o.RepoDigests}, nil
}

// putImageTx records a staged image. An image already recorded keeps its
// repo digests and tag time; with keepExisting (load, as docker) it keeps
// its whole record.
func (s *Store) putImageTx(tx *metadata.Tx, st stagedImage, keepExisting bool) (Record, error) {
	rec := st.rec
	// A sanity check under the write lock: the lease has kept them.
	for _, l := range rec.Layers {
		if !s.snaps.Exists(l.ChainID) || !s.content.Exists(l.Blob) {
			return Record{}, errdefs.Unavailable("layer %s vanished while the image was being created (removed concurrently): try again", l.ChainID)
		}
	}
	for _, d := range []digest.Digest{rec.ID, rec.ManifestDigest, rec.IndexDigest} {
		if d != "" && !s.content.Exists(d) {
			return Record{}, errdefs.Unavailable("image %s vanished while it was being created (removed concurrently): try again", ShortID(rec.ID.String()))
		}
	}
	var existing Record
	if tx.Get(metadata.BucketImages, rec.ID.String(), &existing) == nil {
		if keepExisting {
			return existing, nil
		}
		rec.RepoDigests = existing.RepoDigests
		rec.LastTagTime = existing.LastTagTime
	}
	for _, rd := range st.repoDigests {
		if !slices.Contains(rec.RepoDigests, rd) {
			rec.RepoDigests = append(rec.RepoDigests, rd)
		}
	}
	return rec, tx.Put(metadata.BucketImages, rec.ID.String(), rec)
}

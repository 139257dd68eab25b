package image

// What the registry client needs of the store beyond the ingest path:
// whether a layer is already stored whole (a pull skips it, and a pull
// that was interrupted resumes from the layers it had committed), the
// manifest an image is pushed with, and the repo digests a push adds.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/layer"
	"github.com/berth-dev/berth/internal/metadata"
)

// ChainOf is the chain ID of layer diffID over the chain parent.
func ChainOf(parent, diffID digest.Digest) digest.Digest { return chainOf(parent, diffID) }

// StoredLayer reports whether the layer src states (Parent, DiffID, Blob
// and Size) is stored whole: its snapshot and its blob. Both are named in
// ctx's lease before they are looked at, so a layer reported stored stays
// so until the lease ends or an image references it.
func (s *Store) StoredLayer(ctx context.Context, src LayerSource) (Layer, bool, error) {
	if err := src.DiffID.Validate(); err != nil {
		return Layer{}, false, errdefs.InvalidArgument("layer diff ID %q: %v", src.DiffID, err)
	}
	if err := src.Blob.Validate(); err != nil {
		return Layer{}, false, errdefs.InvalidArgument("layer digest %q: %v", src.Blob, err)
	}
	chain := chainOf(src.Parent, src.DiffID)
	if err := s.protect(ctx, []digest.Digest{chain}, []digest.Digest{src.Blob}); err != nil {
		return Layer{}, false, err
	}
	if !s.snaps.Exists(chain) {
		return Layer{}, false, nil
	}
	size, err := s.content.Size(src.Blob)
	if err != nil || (src.Size > 0 && size != src.Size) {
		return Layer{}, false, nil
	}
	l := Layer{DiffID: src.DiffID, ChainID: chain, Blob: src.Blob, MediaType: src.MediaType, BlobSize: size, Size: -1}
	// The extracted size as an image recorded it; else (a layer an
	// interrupted pull left) counted again.
	err = s.meta.View(ctx, func(tx *metadata.Tx) error {
		return tx.ForEach(metadata.BucketImages, func(_ string, raw []byte) error {
			if l.Size >= 0 {
				return nil
			}
			var r Record
			if json.Unmarshal(raw, &r) == nil {
				for _, rl := range r.Layers {
					if rl.ChainID == chain {
						l.Size = rl.Size
					}
				}
			}
			return nil
		})
	})
	if err != nil {
		return Layer{}, false, err
	}
	if l.Size < 0 {
		if l.Size, err = layer.Size(ctx, s.snaps.Dir(chain)); err != nil {
			return Layer{}, false, err
		}
	}
	if l.MediaType == "" {
		l.MediaType = MediaTypeImageLayerGzip
	}
	return l, true, nil
}

// PushManifest is the manifest image rec is pushed with: the one it came
// with when it still describes it (a pull's or a load's, byte for byte),
// else an OCI manifest written for it. It returns the bytes and their
// media type.
func (s *Store) PushManifest(rec *Record) ([]byte, string, error) {
	raw, err := s.content.ReadAll(rec.ID)
	if err != nil {
		return nil, "", err
	}
	return s.manifestFor(rec, raw)
}

// AddRepoDigest records that image id is known by repository@digest rd
// (a push's), as docker does.
func (s *Store) AddRepoDigest(ctx context.Context, id digest.Digest, rd string) error {
	return s.meta.Update(ctx, func(tx *metadata.Tx) error {
		var rec Record
		if err := tx.Get(metadata.BucketImages, id.String(), &rec); err != nil {
			return err
		}
		if slices.Contains(rec.RepoDigests, rd) {
			return nil
		}
		rec.RepoDigests = append(rec.RepoDigests, rd)
		return tx.Put(metadata.BucketImages, id.String(), rec)
	})
}

// RetainLayers keeps layers for ttl although no image references them:
// those a failed pull completed, so that the next pull resumes from them
// (docker keeps them too). The retention lease names no process; it is
// written while the caller's lease still protects the layers.
func (s *Store) RetainLayers(ctx context.Context, layers []Layer, ttl time.Duration) error {
	if len(layers) == 0 {
		return nil
	}
	var b [8]byte
	rand.Read(b[:])
	now := time.Now().UTC()
	rec := leaseRecord{ID: fmt.Sprintf("retain-%d-%s", now.UnixNano(), hex.EncodeToString(b[:])), Created: now, Expires: now.Add(ttl)}
	for _, l := range layers {
		rec.Chains = append(rec.Chains, l.ChainID)
		rec.Blobs = append(rec.Blobs, l.Blob)
	}
	return s.meta.Update(ctx, func(tx *metadata.Tx) error {
		return tx.Put(metadata.BucketLeases, rec.ID, rec)
	})
}

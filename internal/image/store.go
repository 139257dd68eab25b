// Package image keeps berth's images: references, records in the metadata
// store, configs and manifests in the content store, layers as snapshots.
package image

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/metadata"
	"github.com/berth-dev/berth/internal/snapshot"
)

// Record is an image as the metadata store keeps it.
type Record struct {
	ID             digest.Digest `json:"id"` // the config digest
	ManifestDigest digest.Digest `json:"manifest"`
	// IndexDigest is the index (manifest list) the image was created
	// from, when it came in one (a pull of a multi-platform image).
	IndexDigest digest.Digest `json:"index,omitempty"`
	RepoDigests []string      `json:"repoDigests,omitempty"`
	Layers      []Layer       `json:"layers"`
	Created     time.Time     `json:"created"`
	Size        int64         `json:"size"`
	Parent      digest.Digest `json:"parent,omitempty"`
	LastTagTime time.Time     `json:"lastTagTime,omitzero"`
}

// Layer is one layer of an image.
type Layer struct {
	DiffID    digest.Digest `json:"diffID"`
	ChainID   digest.Digest `json:"chainID"`
	Blob      digest.Digest `json:"blob"` // as stored in the content store
	MediaType string        `json:"mediaType"`
	BlobSize  int64         `json:"blobSize"`
	Size      int64         `json:"size"` // bytes of file content once extracted
}

// ChainIDs of the image's layers, bottom first.
func (r *Record) ChainIDs() []digest.Digest {
	out := make([]digest.Digest, len(r.Layers))
	for i, l := range r.Layers {
		out[i] = l.ChainID
	}
	return out
}

// Image is a record with its tags, as listed and inspected.
type Image struct {
	Record
	RepoTags []string // normalised references
}

// Store is the image service.
type Store struct {
	meta    *metadata.Store
	content *content.Store
	snaps   *snapshot.Snapshotter
	users   Users
}

// Users tells which containers use an image. The container package keeps
// the container records; the image store asks it rather than reading
// them. It answers inside the caller's metadata transaction, so the
// answer holds until the removal it decides commits.
type Users interface {
	ImageUsersTx(tx *metadata.Tx, imageID string) []ContainerUse
}

// ContainerUse is a container that uses an image, as rmi needs it:
// Running is true for a running or paused container.
type ContainerUse struct {
	ID      string
	Running bool
}

// NewStore wires an image store; users answers which containers use an
// image (the container package's).
func NewStore(meta *metadata.Store, cs *content.Store, snaps *snapshot.Snapshotter, users Users) *Store {
	return &Store{meta: meta, content: cs, snaps: snaps, users: users}
}

// Content is the blob store behind the images.
func (s *Store) Content() *content.Store { return s.content }

// Snapshots is the snapshotter behind the images.
func (s *Store) Snapshots() *snapshot.Snapshotter { return s.snaps }

// ErrNoSuchImage formats docker's message for an unknown image.
func ErrNoSuchImage(ref string) error {
	return errdefs.NotFound("No such image: %s", ref)
}

// ResolveTx finds an image by reference, full or abbreviated ID, or digest.
func ResolveTx(tx *metadata.Tx, ref string) (*Record, error) {
	var rec Record
	// An ID: "sha256:<hex>", full hex, or a unique hex prefix.
	idPart := strings.TrimPrefix(ref, "sha256:")
	if isHex(idPart) && len(idPart) >= 1 {
		var found []Record
		tx.ForEachPrefix(metadata.BucketImages, "sha256:"+idPart, func(_ string, raw []byte) error {
			var r Record
			if json.Unmarshal(raw, &r) == nil {
				found = append(found, r)
			}
			return nil
		})
		if len(found) == 1 {
			// A hex-looking name may also be a repository ("docker rmi
			// cafe"): a tag of that name wins over an abbreviated ID.
			if len(idPart) < 64 && !strings.HasPrefix(ref, "sha256:") {
				if named, err := ParseReference(ref); err == nil {
					if id := tx.GetRaw(metadata.BucketTags, named.String()); id != nil {
						return recordByID(tx, string(id))
					}
				}
			}
			return &found[0], nil
		}
		if len(found) > 1 {
			return nil, errdefs.InvalidArgument("ambiguous image ID %q: it matches %d images", ref, len(found))
		}
		if strings.HasPrefix(ref, "sha256:") {
			return nil, ErrNoSuchImage(ref)
		}
	}
	named, err := ParseReference(ref)
	if err != nil {
		return nil, err
	}
	if named.Digest != "" {
		// name@sha256:...: match a repo digest.
		var hit *Record
		tx.ForEach(metadata.BucketImages, func(_ string, raw []byte) error {
			var r Record
			if json.Unmarshal(raw, &r) == nil {
				for _, rd := range r.RepoDigests {
					if strings.HasSuffix(rd, "@"+named.Digest.String()) {
						hit = &r
					}
				}
			}
			return nil
		})
		if hit == nil {
			return nil, ErrNoSuchImage(FamiliarString(ref))
		}
		return hit, nil
	}
	id := tx.GetRaw(metadata.BucketTags, named.String())
	if id == nil {
		return nil, ErrNoSuchImage(FamiliarString(named.String()))
	}
	if err := tx.Get(metadata.BucketImages, string(id), &rec); err != nil {
		return nil, fmt.Errorf("image %s: tag points at a missing record: %w", ref, err)
	}
	return &rec, nil
}

func recordByID(tx *metadata.Tx, id string) (*Record, error) {
	var rec Record
	if err := tx.Get(metadata.BucketImages, id, &rec); err != nil {
		return nil, ErrNoSuchImage(id)
	}
	return &rec, nil
}

func isHex(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Resolve finds an image (see ResolveTx).
func (s *Store) Resolve(ctx context.Context, ref string) (*Image, error) {
	var img *Image
	err := s.meta.View(ctx, func(tx *metadata.Tx) error {
		rec, err := ResolveTx(tx, ref)
		if err != nil {
			return err
		}
		img = &Image{Record: *rec, RepoTags: tagsOf(tx, rec.ID)}
		return nil
	})
	return img, err
}

func tagsOf(tx *metadata.Tx, id digest.Digest) []string {
	var tags []string
	tx.ForEach(metadata.BucketTags, func(k string, v []byte) error {
		if string(v) == id.String() {
			tags = append(tags, k)
		}
		return nil
	})
	return tags
}

// List returns every image with its tags, newest first.
func (s *Store) List(ctx context.Context) ([]Image, error) {
	var out []Image
	err := s.meta.View(ctx, func(tx *metadata.Tx) error {
		tags := map[string][]string{}
		tx.ForEach(metadata.BucketTags, func(k string, v []byte) error {
			tags[string(v)] = append(tags[string(v)], k)
			return nil
		})
		return tx.ForEach(metadata.BucketImages, func(k string, raw []byte) error {
			var r Record
			if err := json.Unmarshal(raw, &r); err != nil {
				return fmt.Errorf("image record %s: %w", k, err)
			}
			t := tags[k]
			sort.Strings(t)
			out = append(out, Image{Record: r, RepoTags: t})
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, err
}

// Config reads an image's configuration.
func (s *Store) Config(id digest.Digest) (*Config, error) {
	raw, err := s.content.ReadAll(id)
	if err != nil {
		return nil, fmt.Errorf("image %s config: %w", ShortID(id.String()), err)
	}
	var c Config
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("image %s config: %w", ShortID(id.String()), err)
	}
	return &c, nil
}

// RawConfig reads an image's configuration bytes as stored.
func (s *Store) RawConfig(id digest.Digest) ([]byte, error) { return s.content.ReadAll(id) }

// Tag points target at the image found by source.
func (s *Store) Tag(ctx context.Context, source, target string) (string, error) {
	tagged, err := ParseTag(target)
	if err != nil {
		return "", err
	}
	err = s.meta.Update(ctx, func(tx *metadata.Tx) error {
		rec, err := ResolveTx(tx, source)
		if err != nil {
			return err
		}
		return setTag(tx, tagged.String(), rec)
	})
	return tagged.String(), err
}

func setTag(tx *metadata.Tx, ref string, rec *Record) error {
	rec.LastTagTime = time.Now().UTC()
	if err := tx.Put(metadata.BucketImages, rec.ID.String(), rec); err != nil {
		return err
	}
	return tx.PutRaw(metadata.BucketTags, ref, []byte(rec.ID.String()))
}

// RemoveResult lists what Remove did, in docker's words.
type RemoveResult struct {
	Untagged []string
	Deleted  []string
}

// Remove untags or deletes an image like `docker rmi`. What the deletion
// leaves unreferenced is marked inside the transaction and swept after it
// (gc.go).
func (s *Store) Remove(ctx context.Context, ref string, force bool) (*RemoveResult, error) {
	res := &RemoveResult{}
	var tr trashed
	err := s.meta.Update(ctx, func(tx *metadata.Tx) error {
		*res, tr = RemoveResult{}, trashed{}
		deleted, err := removeTx(tx, s.users, ref, force, res)
		if err != nil || !deleted {
			return err
		}
		tr, err = s.markTx(tx, nil)
		return err
	})
	if err := s.sweep(tr, err); err != nil {
		return res, err
	}
	if len(res.Deleted) > 0 {
		s.sweepLeftovers()
	}
	return res, nil
}

// removeTx is docker's rmi decision; it reports whether the image record
// was deleted.
func removeTx(tx *metadata.Tx, u Users, ref string, force bool, res *RemoveResult) (bool, error) {
	rec, err := ResolveTx(tx, ref)
	if err != nil {
		return false, err
	}
	tags := tagsOf(tx, rec.ID)
	byID := strings.HasPrefix(rec.ID.Encoded(), strings.TrimPrefix(ref, "sha256:")) && !tagMatches(tags, ref)
	users := u.ImageUsersTx(tx, rec.ID.String())
	if !byID {
		named, _ := ParseReference(ref)
		if len(tags) <= 1 && len(users) > 0 && !force {
			// Untagging would leave the container's image dangling:
			// docker wants that forced.
			return false, errdefs.Conflict("conflict: unable to remove repository reference %q (must force) - container %s is using its referenced image %s", ref, ShortID(users[0].ID), ShortID(rec.ID.String()))
		}
		if err := tx.Delete(metadata.BucketTags, named.String()); err != nil {
			return false, err
		}
		res.Untagged = append(res.Untagged, FamiliarString(named.String()))
		if len(tags) > 1 {
			return false, nil
		}
		for _, rd := range rec.RepoDigests {
			res.Untagged = append(res.Untagged, FamiliarString(rd))
		}
		if len(users) > 0 {
			// Forced: the image stays, untagged, for its containers
			// (running ones keep running; docker's quiet conflict).
			return false, clearRepoDigests(tx, rec)
		}
	} else {
		if len(tags) > 1 && !force {
			return false, errdefs.Conflict("conflict: unable to delete %s (must be forced) - image is referenced in multiple repositories", ShortID(rec.ID.String()))
		}
		for _, c := range users {
			if c.Running {
				return false, errdefs.Conflict("conflict: unable to delete %s (cannot be forced) - image is being used by running container %s", ShortID(rec.ID.String()), ShortID(c.ID))
			}
		}
		if len(users) > 0 && !force {
			return false, errdefs.Conflict("conflict: unable to delete %s (must be forced) - image is being used by stopped container %s", ShortID(rec.ID.String()), ShortID(users[0].ID))
		}
		for _, t := range tags {
			if err := tx.Delete(metadata.BucketTags, t); err != nil {
				return false, err
			}
			res.Untagged = append(res.Untagged, FamiliarString(t))
		}
		for _, rd := range rec.RepoDigests {
			res.Untagged = append(res.Untagged, FamiliarString(rd))
		}
		if len(users) > 0 {
			// A stopped container keeps the image alive, untagged: its
			// layers are its rootfs.
			return false, clearRepoDigests(tx, rec)
		}
	}
	if err := tx.Delete(metadata.BucketImages, rec.ID.String()); err != nil {
		return false, err
	}
	res.Deleted = append(res.Deleted, rec.ID.String())
	return true, nil
}

// clearRepoDigests drops the repo digests Remove reported as untagged.
func clearRepoDigests(tx *metadata.Tx, rec *Record) error {
	if len(rec.RepoDigests) == 0 {
		return nil
	}
	rec.RepoDigests = nil
	return tx.Put(metadata.BucketImages, rec.ID.String(), rec)
}

func tagMatches(tags []string, ref string) bool {
	named, err := ParseReference(ref)
	if err != nil {
		return false
	}
	for _, t := range tags {
		if t == named.String() {
			return true
		}
	}
	return false
}

package image

// Garbage collection of blobs and snapshots, in two phases. The mark runs
// inside the metadata write transaction: it finds what neither an image
// record nor a live lease references and moves it into the stores' trash
// (one rename each), so that no ingest can start to reference it meanwhile
// and no half-removed snapshot is ever taken as whole. The sweep deletes
// the trash after the transaction, so that other berth processes do not
// wait on the write lock while trees are removed.

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/metadata"
)

// candidates limits a mark to some resources (a lease's); nil means all.
type candidates struct {
	chains, blobs []digest.Digest
}

// trashed is what a mark moved aside, for the sweep: trash path -> what
// it was, so that a mark whose transaction fails can be undone.
type trashed struct {
	snapshots, blobs map[string]digest.Digest
}

// markTx trashes the snapshots and blobs (of cand, or all when cand is
// nil) that no image and no live lease references. Dead leases are
// deleted on the way.
func (s *Store) markTx(tx *metadata.Tx, cand *candidates) (trashed, error) {
	tr := trashed{snapshots: map[string]digest.Digest{}, blobs: map[string]digest.Digest{}}
	usedChains := map[digest.Digest]bool{}
	usedBlobs := map[digest.Digest]bool{}
	err := tx.ForEach(metadata.BucketImages, func(_ string, raw []byte) error {
		var r Record
		if err := json.Unmarshal(raw, &r); err != nil {
			return err
		}
		usedBlobs[r.ID] = true
		usedBlobs[r.ManifestDigest] = true
		if r.IndexDigest != "" {
			usedBlobs[r.IndexDigest] = true
		}
		for _, l := range r.Layers {
			usedChains[l.ChainID] = true
			usedBlobs[l.Blob] = true
		}
		return nil
	})
	if err != nil {
		return tr, err
	}
	now := time.Now()
	var dead []string
	err = tx.ForEach(metadata.BucketLeases, func(k string, raw []byte) error {
		var l leaseRecord
		if json.Unmarshal(raw, &l) != nil || !leaseAlive(&l, now) {
			dead = append(dead, k)
			return nil
		}
		for _, c := range l.Chains {
			usedChains[c] = true
		}
		for _, b := range l.Blobs {
			usedBlobs[b] = true
		}
		return nil
	})
	if err != nil {
		return tr, err
	}
	for _, k := range dead {
		if err := tx.Delete(metadata.BucketLeases, k); err != nil {
			return tr, err
		}
	}

	var chains, blobs []digest.Digest
	if cand != nil {
		chains, blobs = cand.chains, cand.blobs
	} else {
		if chains, err = s.snaps.List(); err != nil {
			return tr, err
		}
		err = s.content.Walk(func(d digest.Digest, _ int64) error {
			blobs = append(blobs, d)
			return nil
		})
		if err != nil {
			return tr, err
		}
	}
	for _, c := range chains {
		if usedChains[c] {
			continue
		}
		name, err := s.snaps.Trash(c)
		if err != nil {
			return tr, err
		}
		if name != "" {
			tr.snapshots[name] = c
		}
	}
	for _, b := range blobs {
		if usedBlobs[b] {
			continue
		}
		name, err := s.content.Trash(b)
		if err != nil {
			return tr, err
		}
		if name != "" {
			tr.blobs[name] = b
		}
	}
	return tr, nil
}

// sweep deletes what a mark trashed. txErr is the error of the mark's
// transaction: when it failed, its records are back, so the renames are
// undone instead.
func (s *Store) sweep(tr trashed, txErr error) error {
	if txErr != nil {
		var errs []error
		for name, c := range tr.snapshots {
			errs = append(errs, s.snaps.Restore(name, c))
		}
		for name, b := range tr.blobs {
			errs = append(errs, s.content.Restore(name, b))
		}
		return errors.Join(append([]error{txErr}, errs...)...)
	}
	snaps, blobs := []string{}, []string{}
	for name := range tr.snapshots {
		snaps = append(snaps, name)
	}
	for name := range tr.blobs {
		blobs = append(blobs, name)
	}
	return errors.Join(s.snaps.Sweep(snaps), s.content.Sweep(blobs))
}

// sweepLeftovers deletes what crashed collectors left in the trash. Best
// effort: another collector may be removing the same entries.
func (s *Store) sweepLeftovers() {
	_ = s.snaps.Sweep(nil)
	_ = s.content.Sweep(nil)
}

// Collect removes every blob and snapshot that no image and no live lease
// references (and collects the leases of dead processes).
func (s *Store) Collect(ctx context.Context) error {
	var tr trashed
	err := s.meta.Update(ctx, func(tx *metadata.Tx) error {
		var err error
		tr, err = s.markTx(tx, nil)
		return err
	})
	if err := s.sweep(tr, err); err != nil {
		return err
	}
	s.sweepLeftovers()
	return nil
}

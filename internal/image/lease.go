package image

// Leases, as containerd has them: an ingest (import, load, commit, and the
// coming pull and build) writes blobs and snapshots before the image that
// references them is recorded. Until then nothing but its lease keeps the
// garbage collector (rmi, image prune) from taking them. A lease is a
// record in the metadata store naming its process and what it protects;
// each resource is named in the lease before it becomes visible in the
// stores, so a collector either sees the lease or the resource is not there
// yet. The lease of a process that died (its pid gone, or reused by a
// process started later) or that outlived leaseTTL is collected by the next
// collection, and with it whatever it alone protected.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/metadata"
)

// leaseTTL bounds a lease whose process still looks alive (a hung one).
const leaseTTL = 24 * time.Hour

// leaseRecord is a lease as the metadata store keeps it.
type leaseRecord struct {
	ID      string          `json:"id"`
	PID     int             `json:"pid"`
	Start   uint64          `json:"start"` // the process' start time (clock ticks since boot)
	Created time.Time       `json:"created"`
	Expires time.Time       `json:"expires"`
	Chains  []digest.Digest `json:"chains,omitempty"`
	Blobs   []digest.Digest `json:"blobs,omitempty"`
}

// lease is this process' handle on a lease.
type lease struct {
	id     string
	mu     sync.Mutex
	chains map[digest.Digest]bool
	blobs  map[digest.Digest]bool
}

type leaseKey struct{}

func leaseFrom(ctx context.Context) *lease {
	l, _ := ctx.Value(leaseKey{}).(*lease)
	return l
}

// WithLease runs fn under a lease: what fn stores (layers, configs,
// manifests) survives any concurrent garbage collection until fn returns.
// Then the lease ends, and what it alone protected and no image references
// is removed. Nested calls share the outermost lease, so a caller that
// stores layers and then creates an image from them (commit) holds one
// lease across both.
func (s *Store) WithLease(ctx context.Context, fn func(ctx context.Context) error) error {
	if leaseFrom(ctx) != nil {
		return fn(ctx)
	}
	l, err := s.startLease(ctx)
	if err != nil {
		return err
	}
	err = fn(context.WithValue(ctx, leaseKey{}, l))
	// Best effort: a lease left behind expires with this process.
	_ = s.endLease(context.WithoutCancel(ctx), l)
	return err
}

func (s *Store) startLease(ctx context.Context) (*lease, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	rec := leaseRecord{
		ID: fmt.Sprintf("%d-%s", now.UnixNano(), hex.EncodeToString(b[:])), PID: os.Getpid(),
		Start: procStart(os.Getpid()), Created: now, Expires: now.Add(leaseTTL),
	}
	err := s.meta.Update(ctx, func(tx *metadata.Tx) error {
		return tx.Put(metadata.BucketLeases, rec.ID, rec)
	})
	if err != nil {
		return nil, fmt.Errorf("image store: start lease: %w", err)
	}
	return &lease{id: rec.ID, chains: map[digest.Digest]bool{}, blobs: map[digest.Digest]bool{}}, nil
}

// protect names chains and blobs in ctx's lease, before they are written.
// Without a lease it does nothing (the caller holds no ingest open).
func (s *Store) protect(ctx context.Context, chains, blobs []digest.Digest) error {
	l := leaseFrom(ctx)
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var newChains, newBlobs []digest.Digest
	for _, c := range chains {
		if c != "" && !l.chains[c] {
			newChains = append(newChains, c)
		}
	}
	for _, b := range blobs {
		if b != "" && !l.blobs[b] {
			newBlobs = append(newBlobs, b)
		}
	}
	if len(newChains) == 0 && len(newBlobs) == 0 {
		return nil
	}
	err := s.meta.Update(ctx, func(tx *metadata.Tx) error {
		var rec leaseRecord
		if err := tx.Get(metadata.BucketLeases, l.id, &rec); err != nil {
			// Collected as expired: what was protected may be gone.
			return fmt.Errorf("image store: lease %s expired: %w", l.id, err)
		}
		rec.Chains = append(rec.Chains, newChains...)
		rec.Blobs = append(rec.Blobs, newBlobs...)
		return tx.Put(metadata.BucketLeases, l.id, rec)
	})
	if err != nil {
		return err
	}
	for _, c := range newChains {
		l.chains[c] = true
	}
	for _, b := range newBlobs {
		l.blobs[b] = true
	}
	return nil
}

// endLease deletes the lease and collects what it protected that nothing
// references any more (a failed or superseded ingest's leftovers).
func (s *Store) endLease(ctx context.Context, l *lease) error {
	var tr trashed
	err := s.meta.Update(ctx, func(tx *metadata.Tx) error {
		tr = trashed{}
		var rec leaseRecord
		if err := tx.Get(metadata.BucketLeases, l.id, &rec); err != nil {
			return nil // already collected
		}
		if err := tx.Delete(metadata.BucketLeases, l.id); err != nil {
			return err
		}
		var err error
		tr, err = s.markTx(tx, &candidates{chains: rec.Chains, blobs: rec.Blobs})
		return err
	})
	return s.sweep(tr, err)
}

// leaseAlive reports whether a lease still protects what it names.
func leaseAlive(rec *leaseRecord, now time.Time) bool {
	if now.After(rec.Expires) {
		return false
	}
	if rec.PID == 0 {
		return true // a retention lease (RetainLayers): kept until it expires
	}
	if rec.PID < 0 {
		return false
	}
	start := procStart(rec.PID)
	return start != 0 && (rec.Start == 0 || start == rec.Start)
}

// procStart is the start time of process pid (field 22 of its stat), or 0
// when there is no such process.
func procStart(pid int) uint64 {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(raw)
	i := strings.LastIndexByte(s, ')') // the command name may hold anything
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// Fields after the name start at field 3 (state); starttime is 22.
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

// Package metadata is berth's transactional metadata store: one bbolt file
// with a schema version and ordered migrations. Several berth processes (CLI
// calls, monitors, the API server) share it; each transaction opens the file
// under bbolt's file lock and closes it again, so no process holds the lock
// while it waits on a container.
package metadata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/lockfile"
)

// Buckets of the current schema.
const (
	BucketMeta       = "meta"
	BucketImages     = "images"     // image ID -> image record
	BucketTags       = "tags"       // normalised reference -> image ID
	BucketContainers = "containers" // container ID -> container record
	BucketNames      = "names"      // container name -> container ID
	BucketVolumes    = "volumes"    // volume name -> volume record
	BucketEvents     = "events"     // time-ordered key -> event
	BucketLeases     = "leases"     // lease ID -> what an image ingest in progress protects
	BucketNetworks   = "networks"   // network ID -> network record
	BucketIPAM       = "ipam"       // "<network ID>/<address>" -> the allocation holding it
)

// SchemaVersion is the version this build writes.
const SchemaVersion = 3

// migrations[i] moves a store from version i to i+1.
var migrations = []func(*bolt.Tx) error{
	func(tx *bolt.Tx) error {
		for _, b := range []string{BucketImages, BucketTags, BucketContainers, BucketNames, BucketVolumes, BucketEvents} {
			if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
				return err
			}
		}
		return nil
	},
	// 2: leases protect the blobs and snapshots of an ingest in progress
	// from image garbage collection. Existing images need no change: their
	// layer blobs (uncompressed tars) and manifests stay valid.
	func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists([]byte(BucketLeases))
		return err
	},
	// 3: networks and their address allocations. The predefined networks
	// (bridge, host, none) are made by the network service when first
	// needed; existing containers keep their mode.
	func(tx *bolt.Tx) error {
		for _, b := range []string{BucketNetworks, BucketIPAM} {
			if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
				return err
			}
		}
		return nil
	},
}

// Store is a handle on the metadata file; it holds no open descriptor between
// transactions.
type Store struct {
	path    string
	timeout time.Duration
	batch   batcher // see Batch
}

// Open prepares the store at dir/metadata.db, creating or migrating it.
func Open(ctx context.Context, dir string) (*Store, error) {
	s := &Store{path: filepath.Join(dir, "metadata.db"), timeout: 30 * time.Second}
	// The common case, a store at the current version, needs only a
	// shared lock; a new or older store is migrated under the write lock.
	if _, err := os.Stat(s.path); err == nil {
		h, err := s.open(ctx, false)
		if err != nil {
			return nil, err
		}
		var version int
		err = s.guard(h, func() error {
			return h.db.View(func(tx *bolt.Tx) error {
				if err := s.checkSize(tx, h.file); err != nil {
					return err
				}
				version = readVersion(tx)
				return nil
			})
		})
		h.close()
		if err != nil {
			return nil, err
		}
		if version == SchemaVersion {
			return s, nil
		}
	}
	h, err := s.open(ctx, true)
	if err != nil {
		return nil, err
	}
	defer h.close()
	if err := s.guard(h, func() error { return migrate(h.db) }); err != nil {
		if errdefs.IsDataLoss(err) {
			return nil, err
		}
		return nil, fmt.Errorf("metadata store %s: %w", s.path, err)
	}
	return s, nil
}

func migrate(db *bolt.DB) error {
	var version int
	if err := db.View(func(tx *bolt.Tx) error {
		version = readVersion(tx)
		return nil
	}); err != nil {
		return err
	}
	if version == SchemaVersion {
		return nil
	}
	if version > SchemaVersion {
		return fmt.Errorf("schema version %d is newer than this berth understands (%d): upgrade berth", version, SchemaVersion)
	}
	return db.Update(func(tx *bolt.Tx) error {
		version := readVersion(tx) // another process may have migrated meanwhile
		for v := version; v < SchemaVersion; v++ {
			if err := migrations[v](tx); err != nil {
				return fmt.Errorf("migration to schema %d: %w", v+1, err)
			}
		}
		b, err := tx.CreateBucketIfNotExists([]byte(BucketMeta))
		if err != nil {
			return err
		}
		return b.Put([]byte("schema_version"), []byte(strconv.Itoa(SchemaVersion)))
	})
}

func readVersion(tx *bolt.Tx) int {
	b := tx.Bucket([]byte(BucketMeta))
	if b == nil {
		return 0
	}
	v, _ := strconv.Atoi(string(b.Get([]byte("schema_version"))))
	return v
}

// handle is one opening of the store: bbolt's view of the file, the file
// itself, and the lock file.
type handle struct {
	db   *bolt.DB
	file *os.File
	lock *os.File
	// broken: bbolt panicked while using db, maybe holding its internal
	// locks (Close would then wait forever) or before handing db out.
	broken bool
}

// openFile is bbolt's Options.OpenFile: it keeps the file for close.
func (h *handle) openFile(name string, flag int, mode os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(name, flag, mode)
	h.file = f
	return f, err
}

func (h *handle) close() {
	switch {
	case h.broken && h.file != nil:
		// bbolt's lock belongs to the open file, which its memory map
		// keeps alive past Close: unlock explicitly. The map itself is
		// left behind (bbolt holds its address).
		unix.Flock(int(h.file.Fd()), unix.LOCK_UN)
		h.file.Close()
	case h.db != nil:
		h.db.Close()
	case h.file != nil:
		h.file.Close()
	}
	if h.lock != nil {
		h.lock.Close()
	}
}

// open takes the store's lock file (shared for readers, exclusive for
// writers) with a blocking flock (as long as ctx allows), which wakes as soon as the holder is done,
// unlike bbolt's own lock, which polls every 50 ms; then bbolt's lock is
// always free at once.
func (s *Store) open(ctx context.Context, write bool) (*handle, error) {
	lf, err := os.OpenFile(s.path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open metadata lock: %w", err)
	}
	how := unix.LOCK_SH
	if write {
		how = unix.LOCK_EX
	}
	if err = lockfile.Flock(ctx, lf, how); err != nil {
		lf.Close()
		return nil, fmt.Errorf("lock metadata store: %w", err)
	}
	h := &handle{lock: lf}
	if write {
		// A store last written without a freelist (by berth before the
		// freelist was kept) makes bbolt rebuild it by walking every page
		// in a goroutine of its own, where a corrupted page would crash
		// the process: walk it here first, where that is caught.
		if err := s.checkBeforeFreelistRebuild(); err != nil {
			lf.Close()
			return nil, err
		}
	}
	opts := &bolt.Options{
		Timeout:  s.timeout,
		ReadOnly: !write,
		// The freelist is written with every commit (one page), so that
		// opening for writing reads it instead of walking the whole file.
		NoFreelistSync: false,
		OpenFile:       h.openFile,
	}
	err = s.guard(h, func() error {
		var err error
		h.db, err = bolt.Open(s.path, 0o600, opts)
		return err
	})
	if err != nil {
		h.close()
		switch {
		case errors.Is(err, bolt.ErrTimeout):
			return nil, errdefs.Unavailable("metadata store %s is locked by another process", s.path)
		case errdefs.IsDataLoss(err):
			return nil, err
		case isCorruptionError(err):
			return nil, s.corrupted(err)
		}
		return nil, fmt.Errorf("open metadata store %s: %w", s.path, err)
	}
	return h, nil
}

// isCorruptionError reports whether bbolt refused to open the file for
// what it contains (rather than for access to it).
func isCorruptionError(err error) bool {
	return errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) ||
		errors.Is(err, berrors.ErrVersionMismatch) || errors.Is(err, berrors.ErrInvalidMapping) ||
		strings.Contains(err.Error(), "file size too small")
}

// corrupted is the error for a damaged store: what, where, and what to do.
func (s *Store) corrupted(cause error) error {
	return errdefs.DataLoss("metadata database %s is corrupted (%v); berth cannot read its records of images, containers and volumes: "+
		"restore the file from a backup, or move it away to start with empty records (image layers and volume data stay under %s "+
		"but are no longer listed, and running containers are no longer managed)", s.path, cause, filepath.Dir(s.path))
}

// View runs fn in a read-only transaction.
func (s *Store) View(ctx context.Context, fn func(*Tx) error) error {
	h, err := s.open(ctx, false)
	if err != nil {
		return err
	}
	defer h.close()
	return s.guard(h, func() error {
		return h.db.View(func(tx *bolt.Tx) error {
			if err := s.checkSize(tx, h.file); err != nil {
				return err
			}
			return callCaller(func() error { return fn(&Tx{tx: tx}) })
		})
	})
}

// Update runs fn in a read-write transaction; it commits only when fn
// returns nil.
func (s *Store) Update(ctx context.Context, fn func(*Tx) error) error {
	h, err := s.open(ctx, true)
	if err != nil {
		return err
	}
	defer h.close()
	return s.guard(h, func() error {
		return h.db.Update(func(tx *bolt.Tx) error {
			if err := s.checkSize(tx, h.file); err != nil {
				return err
			}
			if err := s.checkPages(tx, h.file); err != nil {
				return err
			}
			return callCaller(func() error { return fn(&Tx{tx: tx}) })
		})
	})
}

// Tx is a transaction with JSON-valued helpers.
type Tx struct {
	tx *bolt.Tx
}

func (t *Tx) bucket(name string) (*bolt.Bucket, error) {
	defer catch()
	b := t.tx.Bucket([]byte(name))
	if b == nil {
		return nil, fmt.Errorf("metadata: bucket %q missing", name)
	}
	return b, nil
}

// Get decodes the value at bucket/key into v; NotFound when absent.
func (t *Tx) Get(bucket, key string, v any) error {
	if _, err := t.bucket(bucket); err != nil {
		return err
	}
	raw := t.GetRaw(bucket, key)
	if raw == nil {
		return errdefs.NotFound("%s %q not found", bucket, key)
	}
	return json.Unmarshal(raw, v)
}

// GetRaw returns the value at bucket/key, or nil.
func (t *Tx) GetRaw(bucket, key string) []byte {
	defer catch()
	b, err := t.bucket(bucket)
	if err != nil {
		return nil
	}
	return b.Get([]byte(key))
}

// Has reports whether bucket/key exists.
func (t *Tx) Has(bucket, key string) bool { return t.GetRaw(bucket, key) != nil }

// Put stores v as JSON at bucket/key.
func (t *Tx) Put(bucket, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return t.PutRaw(bucket, key, raw)
}

// PutRaw stores raw bytes at bucket/key.
func (t *Tx) PutRaw(bucket, key string, raw []byte) error {
	defer catch()
	b, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), raw)
}

// Delete removes bucket/key; absent keys are fine.
func (t *Tx) Delete(bucket, key string) error {
	defer catch()
	b, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	return b.Delete([]byte(key))
}

// ForEach calls fn for every key of bucket in key order.
func (t *Tx) ForEach(bucket string, fn func(key string, raw []byte) error) error {
	defer catch()
	b, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	return b.ForEach(func(k, v []byte) error { return callCaller(func() error { return fn(string(k), v) }) })
}

// ForEachPrefix calls fn for every key of bucket starting with prefix.
func (t *Tx) ForEachPrefix(bucket, prefix string, fn func(key string, raw []byte) error) error {
	defer catch()
	b, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	c := b.Cursor()
	p := []byte(prefix)
	for k, v := c.Seek(p); k != nil && len(k) >= len(p) && string(k[:len(p)]) == prefix; k, v = c.Next() {
		if err := callCaller(func() error { return fn(string(k), v) }); err != nil {
			return err
		}
	}
	return nil
}

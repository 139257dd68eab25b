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
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
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
)

// SchemaVersion is the version this build writes.
const SchemaVersion = 1

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
}

// Store is a handle on the metadata file; it holds no open descriptor between
// transactions.
type Store struct {
	path    string
	timeout time.Duration
}

// Open prepares the store at dir/metadata.db, creating or migrating it.
func Open(ctx context.Context, dir string) (*Store, error) {
	s := &Store{path: filepath.Join(dir, "metadata.db"), timeout: 30 * time.Second}
	// The common case, a store at the current version, needs only a
	// shared lock; a new or older store is migrated under the write lock.
	if _, err := os.Stat(s.path); err == nil {
		db, done, err := s.open(ctx, false)
		if err != nil {
			return nil, err
		}
		var version int
		db.View(func(tx *bolt.Tx) error { version = readVersion(tx); return nil })
		done()
		if version == SchemaVersion {
			return s, nil
		}
	}
	db, done, err := s.open(ctx, true)
	if err != nil {
		return nil, err
	}
	defer done()
	if err := migrate(db); err != nil {
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

// open takes the store's lock file (shared for readers, exclusive for
// writers) with a blocking flock, which wakes as soon as the holder is done,
// unlike bbolt's own lock, which polls every 50 ms; then bbolt's lock is
// always free at once.
func (s *Store) open(ctx context.Context, write bool) (*bolt.DB, func(), error) {
	lf, err := os.OpenFile(s.path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open metadata lock: %w", err)
	}
	how := unix.LOCK_SH
	if write {
		how = unix.LOCK_EX
	}
	for {
		err = unix.Flock(int(lf.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		lf.Close()
		return nil, nil, fmt.Errorf("lock metadata store: %w", err)
	}
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: s.timeout, NoFreelistSync: true, ReadOnly: !write})
	if err != nil {
		lf.Close()
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, nil, errdefs.Unavailable("metadata store %s is locked by another process", s.path)
		}
		return nil, nil, fmt.Errorf("open metadata store %s: %w", s.path, err)
	}
	return db, func() { db.Close(); lf.Close() }, nil
}

// View runs fn in a read-only transaction.
func (s *Store) View(ctx context.Context, fn func(*Tx) error) error {
	db, done, err := s.open(ctx, false)
	if err != nil {
		return err
	}
	defer done()
	return db.View(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// Update runs fn in a read-write transaction; it commits only when fn
// returns nil.
func (s *Store) Update(ctx context.Context, fn func(*Tx) error) error {
	db, done, err := s.open(ctx, true)
	if err != nil {
		return err
	}
	defer done()
	return db.Update(func(tx *bolt.Tx) error { return fn(&Tx{tx: tx}) })
}

// Tx is a transaction with JSON-valued helpers.
type Tx struct {
	tx *bolt.Tx
}

func (t *Tx) bucket(name string) (*bolt.Bucket, error) {
	b := t.tx.Bucket([]byte(name))
	if b == nil {
		return nil, fmt.Errorf("metadata: bucket %q missing", name)
	}
	return b, nil
}

// Get decodes the value at bucket/key into v; NotFound when absent.
func (t *Tx) Get(bucket, key string, v any) error {
	b, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	raw := b.Get([]byte(key))
	if raw == nil {
		return errdefs.NotFound("%s %q not found", bucket, key)
	}
	return json.Unmarshal(raw, v)
}

// GetRaw returns the value at bucket/key, or nil.
func (t *Tx) GetRaw(bucket, key string) []byte {
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
	b, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), raw)
}

// PutRaw stores raw bytes at bucket/key.
func (t *Tx) PutRaw(bucket, key string, raw []byte) error {
	b, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), raw)
}

// Delete removes bucket/key; absent keys are fine.
func (t *Tx) Delete(bucket, key string) error {
	b, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	return b.Delete([]byte(key))
}

// ForEach calls fn for every key of bucket in key order.
func (t *Tx) ForEach(bucket string, fn func(key string, raw []byte) error) error {
	b, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	return b.ForEach(func(k, v []byte) error { return fn(string(k), v) })
}

// ForEachPrefix calls fn for every key of bucket starting with prefix.
func (t *Tx) ForEachPrefix(bucket, prefix string, fn func(key string, raw []byte) error) error {
	b, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	c := b.Cursor()
	p := []byte(prefix)
	for k, v := c.Seek(p); k != nil && len(k) >= len(p) && string(k[:len(p)]) == prefix; k, v = c.Next() {
		if err := fn(string(k), v); err != nil {
			return err
		}
	}
	return nil
}

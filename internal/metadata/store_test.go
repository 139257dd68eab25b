package metadata

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/berth-dev/berth/internal/errdefs"
)

func TestOpenMigratesAndRecordsVersion(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.open(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	db, done := h.db, h.close
	var v int
	db.View(func(tx *bolt.Tx) error { v = readVersion(tx); return nil })
	if v != SchemaVersion {
		t.Fatalf("version = %d, want %d", v, SchemaVersion)
	}
	// A store from a newer berth is refused with a clear error.
	db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(BucketMeta)).Put([]byte("schema_version"), []byte("99"))
	})
	done()
	if _, err := Open(ctx, dir); err == nil {
		t.Fatal("opening a newer schema succeeded")
	}
}

func TestGetPutDelete(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	type rec struct{ A int }
	if err := s.Update(ctx, func(tx *Tx) error { return tx.Put(BucketImages, "x", rec{A: 7}) }); err != nil {
		t.Fatal(err)
	}
	var got rec
	if err := s.View(ctx, func(tx *Tx) error { return tx.Get(BucketImages, "x", &got) }); err != nil || got.A != 7 {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	// A failing update commits nothing.
	boom := errors.New("boom")
	err = s.Update(ctx, func(tx *Tx) error {
		tx.Delete(BucketImages, "x")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if err := s.View(ctx, func(tx *Tx) error { return tx.Get(BucketImages, "x", &got) }); err != nil {
		t.Fatalf("rolled-back delete took effect: %v", err)
	}
	err = s.View(ctx, func(tx *Tx) error { return tx.Get(BucketImages, "absent", &got) })
	if !errdefs.IsNotFound(err) {
		t.Fatalf("absent = %v", err)
	}
}

// Concurrent writers through separate handles (as separate processes would
// use it) lose no update.
func TestConcurrentUpdates(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(ctx, dir)
			if err == nil {
				err = s.Update(ctx, func(tx *Tx) error { return tx.Put(BucketContainers, fmt.Sprint(i), i) })
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	s, _ := Open(ctx, dir)
	count := 0
	s.View(ctx, func(tx *Tx) error {
		return tx.ForEach(BucketContainers, func(string, []byte) error { count++; return nil })
	})
	if count != n {
		t.Fatalf("count = %d, want %d", count, n)
	}
}

// TestMigrateV1AddsLeases: a store of schema 1 (before leases) keeps its
// records and gains the leases bucket.
func TestMigrateV1AddsLeases(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.open(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	err = h.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte(BucketLeases)); err != nil {
			return err
		}
		if err := tx.Bucket([]byte(BucketImages)).Put([]byte("sha256:aa"), []byte(`{"id":"sha256:aa"}`)); err != nil {
			return err
		}
		return tx.Bucket([]byte(BucketMeta)).Put([]byte("schema_version"), []byte("1"))
	})
	h.close()
	if err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx *Tx) error {
		if !tx.Has(BucketImages, "sha256:aa") {
			return errors.New("image record lost")
		}
		return tx.PutRaw(BucketLeases, "l", []byte("{}"))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMigrateV2AddsNetworks: a store of schema 2 (before networks) keeps
// its records and gains the networks and ipam buckets.
func TestMigrateV2AddsNetworks(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.open(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	err = h.db.Update(func(tx *bolt.Tx) error {
		for _, b := range []string{BucketNetworks, BucketIPAM} {
			if err := tx.DeleteBucket([]byte(b)); err != nil {
				return err
			}
		}
		if err := tx.Bucket([]byte(BucketContainers)).Put([]byte("c1"), []byte(`{"Id":"c1"}`)); err != nil {
			return err
		}
		return tx.Bucket([]byte(BucketMeta)).Put([]byte("schema_version"), []byte("2"))
	})
	h.close()
	if err != nil {
		t.Fatal(err)
	}
	if s, err = Open(ctx, dir); err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx *Tx) error {
		if !tx.Has(BucketContainers, "c1") {
			return errors.New("container record lost")
		}
		if err := tx.PutRaw(BucketNetworks, "n", []byte("{}")); err != nil {
			return err
		}
		return tx.PutRaw(BucketIPAM, "n/10.0.0.2", []byte("{}"))
	})
	if err != nil {
		t.Fatal(err)
	}
}

package metadata

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/berth-dev/berth/internal/errdefs"
)

// fillStore makes a store with enough records for several pages of each
// kind and returns the bytes of its file.
func fillStore(t *testing.T, noFreelistSync bool) []byte {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx *Tx) error {
		for i := range 400 {
			if err := tx.Put(BucketContainers, fmt.Sprintf("c%04d", i), map[string]string{"pad": strings.Repeat("x", 300)}); err != nil {
				return err
			}
			if err := tx.Put(BucketImages, fmt.Sprintf("i%04d", i), i); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if noFreelistSync {
		// A commit as berth made them before it kept the freelist.
		db, err := bolt.Open(s.path, 0o600, &bolt.Options{NoFreelistSync: true})
		if err != nil {
			t.Fatal(err)
		}
		db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte(BucketVolumes)).Put([]byte("v"), []byte("{}")) })
		db.Close()
		if freelistSynced(s.path) {
			t.Fatal("freelistSynced: true for a store written without a freelist")
		}
	} else if !freelistSynced(s.path) {
		t.Fatal("freelistSynced: false for a store written by this berth")
	}
	raw, err := os.ReadFile(s.path)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// exercise runs what berth commands do with a store at dir, and returns
// the errors; a panic fails the test.
func exercise(t *testing.T, dir string) []error {
	t.Helper()
	ctx := context.Background()
	var errs []error
	s, err := Open(ctx, dir)
	errs = append(errs, err)
	if err != nil {
		s = &Store{path: filepath.Join(dir, "metadata.db"), timeout: time.Second}
	}
	errs = append(errs, s.View(ctx, func(tx *Tx) error {
		for _, b := range []string{BucketContainers, BucketImages, BucketVolumes, BucketNames} {
			if err := tx.ForEach(b, func(string, []byte) error { return nil }); err != nil {
				return err
			}
		}
		var v map[string]string
		tx.Get(BucketContainers, "c0200", &v)
		return nil
	}))
	errs = append(errs, s.Update(ctx, func(tx *Tx) error {
		if err := tx.Put(BucketContainers, "new", 1); err != nil {
			return err
		}
		return tx.Delete(BucketContainers, "c0100")
	}))
	return errs
}

// TestCorruptedStoreIsAnError: a damaged file gives the store's
// corruption error naming the file, never a panic or a crash.
func TestCorruptedStoreIsAnError(t *testing.T) {
	const page = 4096
	for _, old := range []bool{false, true} {
		good := fillStore(t, old)
		if len(good) < 8*page {
			t.Fatalf("store too small for the test: %d bytes", len(good))
		}
		garbage := make([]byte, len(good))
		rand.New(rand.NewSource(1)).Read(garbage)
		cases := map[string]func([]byte) []byte{
			"truncated": func(b []byte) []byte { return b[:len(b)/2] },
			"garbage":   func([]byte) []byte { return garbage },
			"metas zeroed": func(b []byte) []byte {
				clear(b[:2*page])
				return b
			},
			"data page headers": func(b []byte) []byte {
				for p := 2; p*page < len(b); p++ {
					for i := range 16 {
						b[p*page+i] = 0xA5
					}
				}
				return b
			},
		}
		for name, corrupt := range cases {
			t.Run(fmt.Sprintf("%s/oldformat=%v", name, old), func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "metadata.db")
				if err := os.WriteFile(path, corrupt(append([]byte(nil), good...)), 0o600); err != nil {
					t.Fatal(err)
				}
				for i, err := range exercise(t, dir) {
					if !errdefs.IsDataLoss(err) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "corrupted") {
						t.Fatalf("step %d: %v, want the corruption error naming %s", i, err, path)
					}
				}
			})
		}
	}
}

// TestCorruptedPagesNeverPanic damages each page of a store in turn at
// several places: any outcome but a panic or crash is fine (a flipped
// byte in a value may go unnoticed).
func TestCorruptedPagesNeverPanic(t *testing.T) {
	const page = 4096
	good := fillStore(t, false)
	rng := rand.New(rand.NewSource(7))
	dir := t.TempDir()
	path := filepath.Join(dir, "metadata.db")
	for p := 0; p*page < len(good); p++ {
		for _, off := range []int{0, 8, 10, 12, 16 + rng.Intn(page-16)} {
			b := append([]byte(nil), good...)
			for i := range 4 {
				b[p*page+off+i] ^= byte(1 + rng.Intn(255))
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			os.Remove(path + ".lock")
			exercise(t, dir)
		}
	}
}

// TestCallerPanicIsNotCorruption: a bug in a transaction's function stays
// a panic; it must not be reported as a damaged file.
func TestCallerPanicIsNotCorruption(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s.Update(ctx, func(tx *Tx) error { return tx.Put(BucketImages, "x", 1) })
	for name, f := range map[string]func(){
		"view": func() { s.View(ctx, func(*Tx) error { panic("bug") }) },
		"foreach": func() {
			s.View(ctx, func(tx *Tx) error {
				return tx.ForEach(BucketImages, func(string, []byte) error { panic("bug") })
			})
		},
		"update": func() { s.Update(ctx, func(*Tx) error { panic("bug") }) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if r := recover(); r != "bug" {
					t.Fatalf("recovered %v, want the caller's panic", r)
				}
			}()
			f()
		})
	}
	// The store still works after the panics.
	if err := s.Update(ctx, func(tx *Tx) error { return tx.Put(BucketImages, "y", 2) }); err != nil {
		t.Fatal(err)
	}
}

// TestStoreWithoutFreelistIsConverted: a store written before the
// freelist was kept opens, is checked once, and keeps a freelist from
// its next write on.
func TestStoreWithoutFreelistIsConverted(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "metadata.db")
	if err := os.WriteFile(path, fillStore(t, true), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, err := range exercise(t, dir) {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if !freelistSynced(path) {
		t.Fatal("the store still has no freelist after a write")
	}
	s, _ := Open(ctx, dir)
	var n int
	s.View(ctx, func(tx *Tx) error {
		return tx.ForEach(BucketContainers, func(string, []byte) error { n++; return nil })
	})
	if n != 400 { // 400 - c0100 + new
		t.Fatalf("%d containers after the conversion, want 400", n)
	}
}

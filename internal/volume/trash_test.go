package volume

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRemoveDeletesOutsideTheTransaction: the tree of a removed volume is
// deleted while no metadata transaction runs, so other berth processes
// do not wait on the walk.
func TestRemoveDeletesOutsideTheTransaction(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		remove func(s *Store) error
	}{
		{"rm", func(s *Store) error { return s.Remove(ctx, "vol1", false) }},
		{"prune", func(s *Store) error {
			removed, _, err := s.Prune(ctx, true, nil)
			if err == nil && len(removed) != 1 {
				err = errors.New("prune removed nothing")
			}
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newStore(t)
			v, err := s.Create(ctx, CreateOptions{Name: "vol1"})
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(v.Mountpoint, "f"), []byte("data"), 0o644)
			lockPath := filepath.Join(filepath.Dir(s.root), "metadata.db.lock")
			called := false
			s.removeTree = func(dir string) error {
				called = true
				f, err := os.Open(lockPath)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
					t.Errorf("volume tree deleted inside a metadata transaction (lock: %v)", err)
				}
				unix.Flock(int(f.Fd()), unix.LOCK_UN)
				return os.RemoveAll(dir)
			}
			if err := tc.remove(s); err != nil {
				t.Fatal(err)
			}
			if !called {
				t.Fatal("the tree was not deleted through the trash")
			}
			if _, err := os.Stat(filepath.Join(s.root, "vol1")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("volume directory left: %v", err)
			}
			if ents, _ := os.ReadDir(s.trashDir()); len(ents) != 0 {
				t.Fatalf("trash left: %v", ents)
			}
		})
	}
}

// TestTrashOfADeadRemoverIsEmptied: a removal killed after its commit
// leaves its tree in the trash; the next removal deletes it, but not a
// tree that a live process is deleting.
func TestTrashOfADeadRemoverIsEmptied(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	dead := filepath.Join(s.trashDir(), "old.vol.999999999.12345.abcdef")
	live := filepath.Join(s.trashDir(), "busy.1.0.abcdef") // pid 1 started at boot, not at 0
	mine, err := s.toTrashName("busy")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dead, live, mine} {
		if err := os.MkdirAll(filepath.Join(d, "_data", "deep"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Create(ctx, CreateOptions{Name: "other"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(ctx, "other", false); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		kept bool
	}{{dead, false}, {live, false}, {mine, true}} {
		_, err := os.Stat(tc.path)
		if kept := err == nil; kept != tc.kept {
			t.Errorf("%s: kept %v, want %v", filepath.Base(tc.path), kept, tc.kept)
		}
	}
}

package volume

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/metadata"
)

// fakeUsers is the container package's answer to "who mounts volume X":
// a fixed table of volume name -> container IDs.
type fakeUsers map[string][]string

func (u fakeUsers) VolumeUsersTx(_ *metadata.Tx, name string) []string { return u[name] }

func newStore(t *testing.T) (*Store, *metadata.Store) {
	t.Helper()
	return newStoreWithUsers(t, fakeUsers{})
}

func newStoreWithUsers(t *testing.T, users Users) (*Store, *metadata.Store) {
	t.Helper()
	dir := t.TempDir()
	meta, err := metadata.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return NewStore(dir, meta, users), meta
}

func TestCreateGetRemove(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	v, err := s.Create(ctx, CreateOptions{Name: "data", Labels: map[string]string{"a": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(v.Mountpoint); err != nil || !fi.IsDir() {
		t.Fatalf("mountpoint: %v", err)
	}
	os.WriteFile(filepath.Join(v.Mountpoint, "f"), []byte("x"), 0o644)
	// Creating it again returns the same volume, data intact.
	v2, err := s.Create(ctx, CreateOptions{Name: "data"})
	if err != nil || v2.Mountpoint != v.Mountpoint || v2.Labels["a"] != "b" {
		t.Fatalf("re-create: %+v %v", v2, err)
	}
	if _, err := os.Stat(filepath.Join(v.Mountpoint, "f")); err != nil {
		t.Fatal("re-create lost data")
	}
	tests := []struct {
		name    string
		opts    CreateOptions
		wantErr error
	}{
		{"bad name", CreateOptions{Name: "../x"}, errdefs.ErrInvalidArgument},
		{"one char", CreateOptions{Name: "a"}, errdefs.ErrInvalidArgument},
		{"other driver", CreateOptions{Name: "nfs1", Driver: "nfs"}, errdefs.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Create(ctx, tc.opts); !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
	if err := s.Remove(ctx, "data", false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(v.Mountpoint); !os.IsNotExist(err) {
		t.Fatal("data left after Remove")
	}
	if err := s.Remove(ctx, "data", false); !errdefs.IsNotFound(err) {
		t.Fatalf("removing twice: %v", err)
	}
	if err := s.Remove(ctx, "data", true); err != nil {
		t.Fatalf("forced remove of a missing volume: %v", err)
	}
}

func TestInUseAndPrune(t *testing.T) {
	s, _ := newStoreWithUsers(t, fakeUsers{"used": {"c1"}})
	ctx := context.Background()
	s.Create(ctx, CreateOptions{Name: "used"})
	s.Create(ctx, CreateOptions{Name: "named"})
	s.Ensure(ctx, "anon1234", true)
	if err := s.Remove(ctx, "used", true); !errdefs.IsConflict(err) || !strings.Contains(err.Error(), "[c1]") {
		t.Fatalf("removing a volume in use: %v", err)
	}
	removed, _, err := s.Prune(ctx, false, nil)
	if err != nil || len(removed) != 1 || removed[0] != "anon1234" {
		t.Fatalf("prune anonymous: %v %v", removed, err)
	}
	removed, _, err = s.Prune(ctx, true, nil)
	if err != nil || len(removed) != 1 || removed[0] != "named" {
		t.Fatalf("prune all: %v %v", removed, err)
	}
	vols, _ := s.List(ctx)
	if len(vols) != 1 || vols[0].Name != "used" {
		t.Fatalf("left: %v", vols)
	}
}

// TestNamesStayInTheVolumesDir: no name or option reaches a path outside
// <root>/volumes; such names are refused before any file is touched.
func TestNamesStayInTheVolumesDir(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	outside := filepath.Join(filepath.Dir(s.root), "victim")
	os.MkdirAll(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "keep"), []byte("x"), 0o644)
	for _, name := range []string{"..", ".", "../victim", "a/../../victim", "/abs", "a/b", "-x", "", "x"} {
		if _, err := s.Create(ctx, CreateOptions{Name: name}); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Create(%q) = %v, want invalid argument", name, err)
		}
		if _, _, err := s.Ensure(ctx, name, false); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Ensure(%q) = %v, want invalid argument", name, err)
		}
		if err := s.Remove(ctx, name, true); err != nil {
			t.Errorf("Remove(%q, force) = %v", name, err)
		}
		if err := s.Remove(ctx, name, false); !errdefs.IsNotFound(err) {
			t.Errorf("Remove(%q) = %v, want not found", name, err)
		}
	}
	if _, err := s.Create(ctx, CreateOptions{Name: "ok", Opts: map[string]string{"device": "/", "o": "bind"}}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Create with driver options = %v, want invalid argument", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "keep")); err != nil {
		t.Fatalf("a file outside the volumes dir went away: %v", err)
	}
	if ents, _ := os.ReadDir(s.root); len(ents) != 0 {
		t.Fatalf("refused names left entries in the volumes dir: %v", ents)
	}
}

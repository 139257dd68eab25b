package snapshot

import (
	"context"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/testutil"
)

func writeFiles(files map[string]string) func(dir string) (digest.Digest, error) {
	return func(dir string) (digest.Digest, error) {
		var all string
		for name, content := range files {
			os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				return "", err
			}
			all += name + content
		}
		return digest.FromString(all), nil
	}
}

func TestPrepareIsOncePerChain(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id1, created, err := s.Prepare(ctx, writeFiles(map[string]string{"a": "1"}))
	if err != nil || !created {
		t.Fatalf("first Prepare: %v created=%v", err, created)
	}
	id2, created, err := s.Prepare(ctx, writeFiles(map[string]string{"a": "1"}))
	if err != nil || created || id2 != id1 {
		t.Fatalf("second Prepare: %v created=%v id %s vs %s", err, created, id2, id1)
	}
	// A failing extraction leaves nothing behind.
	boom := errors.New("boom")
	if _, _, err := s.Prepare(ctx, func(string) (digest.Digest, error) { return "", boom }); !errors.Is(err, boom) {
		t.Fatalf("failing Prepare: %v", err)
	}
	list, _ := s.List()
	if len(list) != 1 || list[0] != id1 {
		t.Fatalf("snapshots %v", list)
	}
	ents, _ := os.ReadDir(filepath.Join(s.root, "snapshots"))
	if len(ents) != 2 { // the snapshot and the l/ links
		t.Fatalf("leftovers in snapshots: %v", ents)
	}
	if err := s.Remove(id1); err != nil {
		t.Fatal(err)
	}
	if s.Exists(id1) {
		t.Fatal("snapshot still exists after Remove")
	}
}

func TestMountStacksLayers(t *testing.T) {
	testutil.RequiresRoot(t)
	root := t.TempDir()
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	base, _, err := s.Prepare(ctx, writeFiles(map[string]string{"etc/os": "base", "keep": "k"}))
	if err != nil {
		t.Fatal(err)
	}
	top, _, err := s.Prepare(ctx, writeFiles(map[string]string{"etc/os": "top"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateContainerLayer("c1"); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(root, "mnt")
	for _, volatile := range []bool{false, true} {
		if err := s.Mount("c1", []digest.Digest{base, top}, target, MountOptions{Volatile: volatile}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { Unmount(target) })
		if b, _ := os.ReadFile(filepath.Join(target, "etc/os")); string(b) != "top" {
			t.Fatalf("top layer does not win: %q", b)
		}
		if b, _ := os.ReadFile(filepath.Join(target, "keep")); string(b) != "k" {
			t.Fatalf("lower file missing: %q", b)
		}
		if _, err := os.Stat(filepath.Join(target, "etc/hostname")); err != nil {
			t.Fatalf("init layer missing: %v", err)
		}
		os.WriteFile(filepath.Join(target, "new"), []byte("w"), 0o644)
		if _, err := os.Stat(filepath.Join(s.UpperDir("c1"), "new")); err != nil {
			t.Fatalf("write did not land in the upper dir: %v", err)
		}
		if b, _ := os.ReadFile(filepath.Join(s.Dir(base), "etc/os")); string(b) != "base" {
			t.Fatal("a lower layer was modified")
		}
		if err := Unmount(target); err != nil {
			t.Fatal(err)
		}
		if mounted, _ := IsMountPoint(target); mounted {
			t.Fatal("still mounted after Unmount")
		}
		os.RemoveAll(filepath.Join(s.ContainerDir("c1"), "work"))
		os.MkdirAll(filepath.Join(s.ContainerDir("c1"), "work"), 0o755)
	}
	if err := s.Mount("c1", []digest.Digest{digest.FromString("missing")}, target); err == nil {
		Unmount(target)
		t.Fatal("mounting a missing layer succeeded")
	}
}

// TestMountManyLayers stacks 125 layers (docker runs such images; full
// lowerdir paths stopped berth at 41) and refuses, before mounting
// anything, a stack whose options the kernel cannot read.
func TestMountManyLayers(t *testing.T) {
	testutil.RequiresRoot(t)
	root := t.TempDir()
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var chains []digest.Digest
	for i := range 150 {
		ch, _, err := s.Prepare(ctx, writeFiles(map[string]string{fmt.Sprintf("f%03d", i): fmt.Sprint(i), "top": fmt.Sprint(i)}))
		if err != nil {
			t.Fatal(err)
		}
		chains = append(chains, ch)
	}
	// A store from before the links: the mount makes the missing one.
	os.Remove(s.linkPath(chains[3]))
	if err := s.CreateContainerLayer("c1"); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(root, "mnt")
	t.Cleanup(func() { Unmount(target) })
	if err := s.Mount("c1", chains[:125], target); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"f000": "0", "f003": "3", "f124": "124", "top": "124"} {
		if b, err := os.ReadFile(filepath.Join(target, name)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", name, b, err, want)
		}
	}
	if err := Unmount(target); err != nil {
		t.Fatal(err)
	}
	err = s.Mount("c1", chains, target)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "too many layers (150)") {
		t.Fatalf("150 layers: %v, want a too-many-layers error", err)
	}
	if mounted, _ := IsMountPoint(target); mounted {
		t.Fatal("something was mounted after the refusal")
	}
	// Removing a snapshot removes its link.
	if err := s.Remove(chains[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(s.linkPath(chains[0])); !os.IsNotExist(err) {
		t.Fatalf("link of a removed snapshot: %v", err)
	}
}

func TestLinkNameIsBase32OfTheChainID(t *testing.T) {
	for _, s := range []string{"", "a", "layer"} {
		d := digest.FromString(s)
		raw, _ := hex.DecodeString(d.Encoded()[:32])
		want := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw)
		if got := LinkName(d); got != want {
			t.Errorf("LinkName(%s) = %s, want %s", d, got, want)
		}
	}
}

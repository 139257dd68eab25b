//go:build linux

package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

func openPath(t *testing.T, p string) int {
	t.Helper()
	fd, err := unix.Open(p, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func TestWriteTarFD(t *testing.T) {
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "host-secret"), []byte("x"), 0o644)
	root := t.TempDir()
	mustApply(t, root, buildTar(t,
		dirEnt("d/", 0o755),
		fileEnt("d/f", "data", 0o640).with(func(h *tar.Header) { h.Uid, h.Gid = 7, 8 }),
		symlinkEnt("d/up", outside),
		symlinkEnt("abs", outside),
		fileEnt("plain", "p", 0o600),
	))
	cases := []struct {
		name, path string
		opts       TarOptions
		want       []string
		owner      int
	}{
		{"dir renamed", "d", TarOptions{Name: "new"}, []string{"new/", "new/f", "new/up"}, 7},
		{"dir contents", "d", TarOptions{}, []string{"f", "up"}, 7},
		{"root owner", "d", TarOptions{Name: "d", RootOwner: true}, []string{"d/", "d/f", "d/up"}, 0},
		{"symlink stays a link", "abs", TarOptions{Name: "evil"}, []string{"evil"}, 0},
		{"file", "plain", TarOptions{Name: "other"}, []string{"other"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteTarFD(context.Background(), &buf, openPath(t, filepath.Join(root, tc.path)), tc.opts); err != nil {
				t.Fatal(err)
			}
			got := readTar(t, buf.Bytes())
			if names := entryNames(got); !reflect.DeepEqual(names, tc.want) {
				t.Fatalf("names %q, want %q", names, tc.want)
			}
			for _, e := range got {
				if e.Type == tar.TypeSymlink && e.Link != outside {
					t.Errorf("%s links to %q", e.Name, e.Link)
				}
				if e.Type == tar.TypeReg && e.Name != "other" && e.Uid != tc.owner {
					t.Errorf("%s owned by %d, want %d", e.Name, e.Uid, tc.owner)
				}
			}
		})
	}
	var buf bytes.Buffer
	if err := WriteTarFD(context.Background(), &buf, openPath(t, filepath.Join(root, "plain")), TarOptions{}); err == nil {
		t.Fatal("contents of a file: no error")
	}
}

// ApplyAt extracts relative to the descriptor: renaming the directory
// away and planting a symlink in its place does not redirect it.
func TestApplyAtUsesTheDescriptor(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	dir := filepath.Join(root, "dst")
	os.Mkdir(dir, 0o755)
	fd := openPath(t, dir)
	if err := os.Rename(dir, filepath.Join(root, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, dir); err != nil {
		t.Fatal(err)
	}
	if _, err := ApplyAt(context.Background(), fd, bytes.NewReader(buildTar(t, fileEnt("f", "x", 0o644))), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "moved", "f")); err != nil {
		t.Fatalf("not extracted into the opened directory: %v", err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("extracted through the planted symlink: %v", ents)
	}
}

func TestChanges(t *testing.T) {
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "passwd"), nil, 0o644)
	lower, upper := t.TempDir(), t.TempDir()
	mustApply(t, lower, buildTar(t,
		dirEnt("etc/", 0o755), fileEnt("etc/old", "o", 0o644),
		symlinkEnt("l", outside), fileEnt("gone", "", 0o644)))
	mustApply(t, upper, buildTar(t,
		dirEnt("etc/", 0o755), fileEnt("etc/old", "n", 0o644), fileEnt("etc/new", "n", 0o644),
		// l is a directory in the upper layer now: l/passwd must not be
		// found in the lower through its symlink l -> outside.
		dirEnt("l/", 0o755), fileEnt("l/passwd", "", 0o644),
		symlinkEnt("s", outside)))
	if err := unix.Mknod(filepath.Join(upper, "gone"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	got, err := Changes(context.Background(), upper, []string{lower})
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{{"D", "/gone"}, {"C", "/etc"}, {"A", "/etc/new"}, {"C", "/etc/old"}, {"C", "/l"}, {"A", "/l/passwd"}, {"A", "/s"}}
	sortChanges := func(cs []Change) map[string]string {
		m := map[string]string{}
		for _, c := range cs {
			m[c.Path] = c.Kind
		}
		return m
	}
	if !reflect.DeepEqual(sortChanges(got), sortChanges(want)) {
		t.Fatalf("Changes = %v, want %v", got, want)
	}
}

//go:build linux

package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/testutil"
)

func mustApply(t *testing.T, root string, tarball []byte) {
	t.Helper()
	if _, err := Apply(context.Background(), root, bytes.NewReader(tarball)); err != nil {
		t.Fatalf("Apply into %s: %v", root, err)
	}
}

func writeTar(t *testing.T, root string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteTar(context.Background(), &buf, root); err != nil {
		t.Fatalf("WriteTar %s: %v", root, err)
	}
	return buf.Bytes()
}

func diffTar(t *testing.T, upper string, lowers ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Diff(context.Background(), &buf, upper, lowers); err != nil {
		t.Fatalf("Diff %s: %v", upper, err)
	}
	return buf.Bytes()
}

// TestWriteTar checks that WriteTar reproduces what Apply extracted.
func TestWriteTar(t *testing.T) {
	ents := []ent{
		dirEnt("bin/", 0o755),
		fileEnt("bin/a", "aaaa", 0o755),
		linkEnt("bin/b", "bin/a"),
		symlinkEnt("bin/c", "a"),
		dirEnt("etc/", 0o755),
		fileEnt("etc/passwd", "root", 0o644).with(func(h *tar.Header) {
			h.PAXRecords = map[string]string{paxXattrPrefix + "user.k": "v"}
		}),
		dirEnt("etc/x-y/", 0o700),
		fileEnt("etc/x/z", "z", 0o600),
		fifoEnt("run/fifo", 0o600),
		dirEnt("tmp/", 0o1777),
	}
	root := t.TempDir()
	mustApply(t, root, buildTar(t, ents...))
	out := writeTar(t, root)
	got := readTar(t, out)
	wantNames := []string{"bin/", "bin/a", "bin/b", "bin/c", "etc/", "etc/passwd", "etc/x/", "etc/x/z", "etc/x-y/", "run/", "run/fifo", "tmp/"}
	if names := entryNames(got); !reflect.DeepEqual(names, wantNames) {
		t.Fatalf("WriteTar names:\n got %q\nwant %q", names, wantNames)
	}
	byName := map[string]tarEntry{}
	for _, e := range got {
		byName[e.Name] = e
	}
	if e := byName["bin/b"]; e.Type != tar.TypeLink || e.Link != "bin/a" {
		t.Errorf("bin/b = %v, want a hardlink to bin/a", e)
	}
	if e := byName["bin/c"]; e.Type != tar.TypeSymlink || e.Link != "a" {
		t.Errorf("bin/c = %v, want a symlink to a", e)
	}
	if e := byName["etc/passwd"]; e.Xattrs != `user.k="v"` || e.Mtime != testTime.Unix() || e.Mode != 0o644 {
		t.Errorf("etc/passwd = %v", e)
	}
	if e := byName["tmp/"]; e.Mode != 0o1777 || e.Type != tar.TypeDir || e.Mtime != testTime.Unix() {
		t.Errorf("tmp/ = %v", e)
	}

	// Deterministic, and a round trip through Apply gives the same tar.
	if again := writeTar(t, root); !bytes.Equal(again, out) {
		t.Errorf("WriteTar is not deterministic")
	}
	root2 := t.TempDir()
	mustApply(t, root2, out)
	diffEntries(t, readTar(t, writeTar(t, root2)), got)
}

func TestWriteTarSingleFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "hosts")
	if err := os.WriteFile(p, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := readTar(t, writeTar(t, p))
	if len(got) != 1 || got[0].Name != "hosts" || got[0].Size != 20 || got[0].Type != tar.TypeReg {
		t.Fatalf("WriteTar of a file = %v", got)
	}
}

// TestDiff checks the conversion of a hand-made upper dir.
func TestDiff(t *testing.T) {
	testutil.RequiresRoot(t)
	upper := t.TempDir()
	mk := func(rel string) string {
		p := filepath.Join(upper, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if err := os.WriteFile(mk("etc/new"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(mk("etc/new"), mk("etc/new-link")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(mk("etc/gone"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(mk("dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(mk("dev/null"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(mk("var/cache"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mk("var/cache/fresh"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct{ path, name, value string }{
		{"var/cache", overlayOpaqueXattr, "y"},
		{"etc", "trusted.overlay.origin", "junk"},
		{"etc/new", "user.keep", "1"},
		{"etc/new", "trusted.overlay.impure", "y"},
	} {
		if err := unix.Lsetxattr(filepath.Join(upper, x.path), x.name, []byte(x.value), 0); err != nil {
			t.Fatal(err)
		}
	}
	out := diffTar(t, upper)
	got := readTar(t, out)
	wantNames := []string{
		"dev/", "dev/null",
		"etc/", "etc/.wh.gone", "etc/new", "etc/new-link",
		"var/", "var/cache/", "var/cache/.wh..wh..opq", "var/cache/fresh",
	}
	if names := entryNames(got); !reflect.DeepEqual(names, wantNames) {
		t.Fatalf("Diff names:\n got %q\nwant %q", names, wantNames)
	}
	for _, e := range got {
		switch e.Name {
		case "etc/.wh.gone", "var/cache/.wh..wh..opq":
			if e.Type != tar.TypeReg || e.Size != 0 {
				t.Errorf("%s: whiteout entry = %v", e.Name, e)
			}
		case "etc/new-link":
			if e.Type != tar.TypeLink || e.Link != "etc/new" {
				t.Errorf("%s = %v, want hardlink to etc/new", e.Name, e)
			}
		case "etc/new":
			if e.Xattrs != `user.keep="1"` {
				t.Errorf("etc/new xattrs = %s, want only user.keep", e.Xattrs)
			}
		case "etc/":
			if e.Xattrs != "" {
				t.Errorf("etc/ xattrs = %s, want none", e.Xattrs)
			}
		case "dev/null":
			if e.Type != tar.TypeChar || e.Dev != "1/3" || e.Mode != 0o666 {
				t.Errorf("dev/null = %v", e)
			}
		}
	}
	if again := diffTar(t, upper); !bytes.Equal(again, out) {
		t.Errorf("Diff is not deterministic")
	}

	// A renamed directory (redirect_dir) cannot be expressed.
	if err := unix.Lsetxattr(filepath.Join(upper, "var/cache"), overlayRedirectXattr, []byte("/old"), 0); err != nil {
		t.Fatal(err)
	}
	err := Diff(context.Background(), &bytes.Buffer{}, upper, nil)
	if !errors.Is(err, errdefs.ErrNotImplemented) {
		t.Errorf("Diff with a redirected directory: %v, want not-implemented", err)
	}
}

// mountOverlay mounts an overlay at a new directory and unmounts it when
// the test ends.
func mountOverlay(t *testing.T, opts string) string {
	t.Helper()
	merged := t.TempDir()
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		testutil.Skip(t, "cannot mount overlay ("+opts+"): "+err.Error())
	}
	t.Cleanup(func() {
		if err := unix.Unmount(merged, 0); err != nil {
			t.Errorf("unmount %s: %v", merged, err)
		}
	})
	return merged
}

// TestDiffRoundTrip changes an overlay, diffs its upper dir and checks that
// the base layer plus the diff give the same view.
func TestDiffRoundTrip(t *testing.T) {
	testutil.RequiresRoot(t)
	baseTar := buildTar(t,
		dirEnt("bin/", 0o755),
		fileEnt("bin/tool", "tool", 0o755),
		fileEnt("bin/keep", "keep", 0o755),
		linkEnt("bin/keep-link", "bin/keep"),
		dirEnt("etc/", 0o755),
		fileEnt("etc/conf", "old conf", 0o644),
		fileEnt("etc/mode", "mode", 0o644),
		fileEnt("etc/f2", "becomes a dir", 0o644),
		symlinkEnt("etc/ln", "/etc/conf"),
		dirEnt("data/", 0o755),
		fileEnt("data/old1", "1", 0o644),
		fileEnt("data/sub/old2", "2", 0o644),
		dirEnt("old/", 0o755),
		fileEnt("old/x", "x", 0o644),
		dirEnt("lib/", 0o755),
		fileEnt("lib/y", "y", 0o644),
		dirEnt("merge/", 0o755),
		fileEnt("merge/lower", "l", 0o644),
	)
	lower, upper, work := t.TempDir(), t.TempDir(), t.TempDir()
	mustApply(t, lower, baseTar)
	merged := mountOverlay(t, "lowerdir="+lower+",upperdir="+upper+",workdir="+work+",redirect_dir=off,index=off,metacopy=off")

	m := func(rel string) string { return filepath.Join(merged, rel) }
	steps := []struct {
		name string
		do   func() error
	}{
		{"add", func() error { return os.WriteFile(m("etc/new"), []byte("new file"), 0o640) }},
		{"modify", func() error { return os.WriteFile(m("etc/conf"), []byte("new conf"), 0o644) }},
		{"chmod", func() error { return os.Chmod(m("etc/mode"), 0o600) }},
		{"chown", func() error { return os.Lchown(m("etc/ln"), 42, 43) }},
		{"delete file", func() error { return os.Remove(m("bin/tool")) }},
		{"delete dir", func() error { return os.RemoveAll(m("old")) }},
		{"replace dir by opaque dir", func() error {
			if err := os.RemoveAll(m("data")); err != nil {
				return err
			}
			if err := os.Mkdir(m("data"), 0o700); err != nil {
				return err
			}
			return os.WriteFile(m("data/fresh"), []byte("fresh"), 0o644)
		}},
		{"replace file by dir", func() error {
			if err := os.Remove(m("etc/f2")); err != nil {
				return err
			}
			return os.MkdirAll(m("etc/f2/inner"), 0o755)
		}},
		{"replace dir by file", func() error {
			if err := os.RemoveAll(m("lib")); err != nil {
				return err
			}
			return os.WriteFile(m("lib"), []byte("lib file"), 0o644)
		}},
		{"add to lower dir", func() error { return os.WriteFile(m("merge/upper"), []byte("u"), 0o644) }},
		{"new hardlinks", func() error {
			if err := os.MkdirAll(m("new"), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(m("new/a"), []byte("shared"), 0o644); err != nil {
				return err
			}
			return os.Link(m("new/a"), m("new/b"))
		}},
		{"symlink", func() error { return os.Symlink("../etc/conf", m("new/ln")) }},
		{"xattr", func() error { return unix.Lsetxattr(m("new/a"), "user.note", []byte("hi"), 0) }},
		{"fifo", func() error { return unix.Mkfifo(m("new/fifo"), 0o600) }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}

	diff := diffTar(t, upper, lower)
	names := entryNames(readTar(t, diff))
	for _, want := range []string{"bin/.wh.tool", ".wh.old", "data/", "data/.wh..wh..opq", "data/fresh", "etc/conf", "new/b", "lib"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("diff has no entry %q; entries: %q", want, names)
		}
	}
	for _, n := range names {
		if strings.HasPrefix(n, "bin/keep") || strings.HasPrefix(n, "merge/lower") {
			t.Errorf("diff holds unchanged entry %q", n)
		}
	}

	// Base + diff as two lower layers must show the same tree.
	lower2 := t.TempDir()
	mustApply(t, lower2, diff)
	merged2 := mountOverlay(t, "lowerdir="+lower2+":"+lower)
	want := readTar(t, writeTar(t, merged))
	got := readTar(t, writeTar(t, merged2))
	diffEntries(t, got, want)

	// And the diff of an unchanged overlay is empty.
	upper3, work3 := t.TempDir(), t.TempDir()
	mountOverlay(t, "lowerdir="+lower+",upperdir="+upper3+",workdir="+work3)
	if es := readTar(t, diffTar(t, upper3, lower)); len(es) != 0 {
		t.Errorf("diff of an unchanged overlay: %v", es)
	}
}

// TestDiffMetacopy reads the data of metacopy files from the lowers.
func TestDiffMetacopy(t *testing.T) {
	testutil.RequiresRoot(t)
	lower, upper, work := t.TempDir(), t.TempDir(), t.TempDir()
	mustApply(t, lower, buildTar(t, fileEnt("d/big", strings.Repeat("data", 1000), 0o644)))
	merged := mountOverlay(t, "lowerdir="+lower+",upperdir="+upper+",workdir="+work+",metacopy=on")
	if err := os.Chmod(filepath.Join(merged, "d/big"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := getXattrPath(filepath.Join(upper, "d/big"), overlayMetacopyXattr); err != nil {
		testutil.Skip(t, "overlay did not make a metacopy file: "+err.Error())
	}
	got := readTar(t, diffTar(t, upper, lower))
	want := readTar(t, buildTar(t,
		dirEnt("d/", 0o755),
		fileEnt("d/big", strings.Repeat("data", 1000), 0o600)))
	if len(got) != 2 {
		t.Fatalf("diff = %v", got)
	}
	if got[1].Sum != want[1].Sum || got[1].Size != 4000 || got[1].Mode != 0o600 {
		t.Errorf("metacopy file in diff = %v, want %v", got[1], want[1])
	}
}

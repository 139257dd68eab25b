package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRootLookup checks that paths resolve inside the root whatever the
// symlinks in it say, and that creating follows the same rules.
func TestRootLookup(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir() // a host directory links point at
	r := testRoot(t, root, []string{"a", "b/c"}, []string{"f"}, map[string]string{
		"abs":     "/a",
		"rel":     "a/../b",
		"up":      "../../../..",
		"host":    outside,
		"loop":    "loop",
		"a/back":  "../b/c",
		"dangle":  "/nowhere/file",
		"b/c/top": "/",
	})

	for _, tc := range []struct {
		name, path string
		create     bool
		want       string // the resolved path inside the root
		wantErr    error
	}{
		{name: "plain", path: "/a", want: "/a"},
		{name: "absolute link", path: "/abs/x", want: "/a/x"},
		{name: "relative link with dotdot", path: "/rel/c", want: "/b/c"},
		{name: "dotdot above the root", path: "/../../a", want: "/a"},
		{name: "link above the root", path: "/up/a", want: "/a"},
		{name: "link to a host path stays inside", path: "/host/x", want: outside + "/x", create: true},
		{name: "link in a subdirectory", path: "/a/back/x", want: "/b/c/x"},
		{name: "link to the root", path: "/b/c/top/a", want: "/a"},
		{name: "dangling link is created inside", path: "/dangle", want: "/nowhere/file", create: true},
		{name: "missing parent without create", path: "/no/such/x", wantErr: unix.ENOENT},
		{name: "loop", path: "/loop/x", wantErr: unix.ELOOP},
		{name: "file as a directory", path: "/f/x", wantErr: unix.ENOTDIR},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, name, got, err := r.lookup(tc.path, tc.create)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("lookup(%q) = %q, %v; want error %v", tc.path, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("lookup(%q): %v", tc.path, err)
			}
			defer unix.Close(dir)
			if got != tc.want || name != filepath.Base(tc.want) {
				t.Fatalf("lookup(%q) = %q (name %q), want %q", tc.path, got, name, tc.want)
			}
			// The fd is the directory the path names, inside the root.
			p, err := fdPath(dir)
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(root, filepath.Dir(tc.want)); p != want {
				t.Fatalf("parent fd of %q is %s, want %s", tc.path, p, want)
			}
		})
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("lookup created %v in the host directory a link pointed at", ents)
	}
}

// TestOpenMountPoint checks the kinds of mount point and that a created
// one is where the destination says.
func TestOpenMountPoint(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc", "dir"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "file"), nil, 0o644)
	os.Symlink("../run/resolv.conf", filepath.Join(root, "etc", "resolv.conf"))
	r, err := openRootDir(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	for _, tc := range []struct {
		dest    string
		kind    mountPointKind
		want    string
		wantErr bool
	}{
		{dest: "/etc/dir", kind: mountOnDir, want: "etc/dir"},
		{dest: "/etc/new/sub", kind: mountOnDir, want: "etc/new/sub"},
		{dest: "/etc/file", kind: mountOnFile, want: "etc/file"},
		{dest: "/etc/resolv.conf", kind: mountOnFile, want: "run/resolv.conf"},
		{dest: "/etc/dir", kind: mountOnFile, wantErr: true},
		{dest: "/etc/file", kind: mountOnDir, wantErr: true},
		{dest: "/", kind: mountOnDir, wantErr: true},
	} {
		mp, err := r.openMountPoint(tc.dest, tc.kind, nil)
		if tc.wantErr {
			if err == nil {
				mp.close()
				t.Errorf("openMountPoint(%q, %d) succeeded", tc.dest, tc.kind)
			}
			continue
		}
		if err != nil {
			t.Errorf("openMountPoint(%q, %d): %v", tc.dest, tc.kind, err)
			continue
		}
		if p, _ := fdPath(mp.fd); p != filepath.Join(root, tc.want) {
			t.Errorf("openMountPoint(%q) opened %s, want %s", tc.dest, p, filepath.Join(root, tc.want))
		}
		mp.close()
	}
}

// testRoot makes dirs, empty files and links (name -> target) under
// root and opens it as a rootDir, closed when t ends.
func testRoot(t *testing.T, root string, dirs, files []string, links map[string]string) *rootDir {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(root, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range links {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := openRootDir(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.close)
	return r
}

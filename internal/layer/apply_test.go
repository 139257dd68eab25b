//go:build linux

package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/testutil"
)

// TestApply covers file types, names and replacement rules. It runs
// without root: entries are owned by the current user.
func TestApply(t *testing.T) {
	tests := []struct {
		name  string
		ents  []ent
		want  map[string]string
		bytes int
	}{
		{
			name: "file types",
			ents: []ent{
				dirEnt("etc/", 0o755),
				fileEnt("etc/passwd", "root:x:0:0\n", 0o644),
				symlinkEnt("etc/abs", "/usr/lib/os-release"),
				symlinkEnt("etc/rel", "../usr/lib/x"),
				linkEnt("etc/passwd-", "etc/passwd"),
				fifoEnt("run/fifo", 0o620),
				dirEnt("tmp/", 0o1777),
				fileEnt("bin/su", "su", 0o4755),
				fileEnt("bin/wall", "wall", 0o2755),
			},
			want: map[string]string{
				"etc":         "dir 0755",
				"etc/passwd":  `file 0644 "root:x:0:0\n"`,
				"etc/passwd-": `file 0644 "root:x:0:0\n"`,
				"etc/abs":     "symlink /usr/lib/os-release",
				"etc/rel":     "symlink ../usr/lib/x",
				"run":         "dir 0755",
				"run/fifo":    "fifo 0620",
				"tmp":         "dir 1777",
				"bin":         "dir 0755",
				"bin/su":      `file 4755 "su"`,
				"bin/wall":    `file 2755 "wall"`,
			},
			// Regular content and, as docker's layer sizes, each
			// symlink's target length; the hard link counts once.
			bytes: 11 + 2 + 4 + len("/usr/lib/os-release") + len("../usr/lib/x"),
		},
		{
			name: "leading slash, dot slash and inner dot-dot are relative to root",
			ents: []ent{
				fileEnt("/abs", "1", 0o600),
				fileEnt("./dot", "2", 0o600),
				fileEnt("a/b/../c", "3", 0o600),
				fileEnt("//x//y", "4", 0o600),
				dirEnt("./", 0o755),
			},
			want: map[string]string{
				"abs": `file 0600 "1"`,
				"dot": `file 0600 "2"`,
				"a":   "dir 0755",
				"a/c": `file 0600 "3"`,
				"x":   "dir 0755",
				"x/y": `file 0600 "4"`,
			},
			bytes: 4,
		},
		{
			name: "missing parents are created 0755",
			ents: []ent{fileEnt("a/b/c/d", "x", 0o640)},
			want: map[string]string{
				"a": "dir 0755", "a/b": "dir 0755", "a/b/c": "dir 0755",
				"a/b/c/d": `file 0640 "x"`,
			},
			bytes: 1,
		},
		{
			name: "file replaces file and breaks its hardlinks",
			ents: []ent{
				fileEnt("f", "old", 0o644),
				linkEnt("g", "f"),
				fileEnt("f", "new", 0o600),
			},
			want: map[string]string{
				"f": `file 0600 "new"`,
				"g": `file 0644 "old"`,
			},
			bytes: 6,
		},
		{
			name: "file replaces directory tree",
			ents: []ent{
				dirEnt("d/", 0o755),
				fileEnt("d/sub/f", "x", 0o644),
				fileEnt("d", "file", 0o644),
			},
			want:  map[string]string{"d": `file 0644 "file"`},
			bytes: 5,
		},
		{
			name: "directory replaces file",
			ents: []ent{
				fileEnt("d", "file", 0o644),
				dirEnt("d/", 0o700),
				fileEnt("d/f", "x", 0o644),
			},
			want:  map[string]string{"d": "dir 0700", "d/f": `file 0644 "x"`},
			bytes: 5,
		},
		{
			name: "directory over directory keeps content and updates metadata",
			ents: []ent{
				dirEnt("d/", 0o755),
				fileEnt("d/f", "x", 0o644),
				dirEnt("d/", 0o750),
			},
			want:  map[string]string{"d": "dir 0750", "d/f": `file 0644 "x"`},
			bytes: 1,
		},
		{
			name: "file replaces symlink without following it",
			ents: []ent{
				symlinkEnt("s", "/etc/passwd"),
				fileEnt("s", "mine", 0o644),
			},
			want:  map[string]string{"s": `file 0644 "mine"`},
			bytes: len("/etc/passwd") + 4,
		},
		{
			name: "symlink replaces directory",
			ents: []ent{
				dirEnt("lib/", 0o755),
				fileEnt("lib/x", "x", 0o644),
				symlinkEnt("lib", "usr/lib"),
			},
			want:  map[string]string{"lib": "symlink usr/lib"},
			bytes: 1 + len("usr/lib"),
		},
		{
			name: "hardlink to symlink links the symlink itself",
			ents: []ent{
				symlinkEnt("s", "/nowhere"),
				linkEnt("h", "s"),
			},
			want:  map[string]string{"s": "symlink /nowhere", "h": "symlink /nowhere"},
			bytes: len("/nowhere"),
		},
		{
			name: "global header and aufs metadata are ignored",
			ents: []ent{
				{hdr: tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "x"}, Format: tar.FormatPAX}},
				fileEnt(".wh..wh.aufs", "", 0o600),
				dirEnt(".wh..wh.plnk/", 0o700),
				fileEnt("f", "x", 0o644),
			},
			want:  map[string]string{"f": `file 0644 "x"`},
			bytes: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for _, noOpenat2 := range []bool{false, true} {
				root := filepath.Join(root, "openat2")
				if noOpenat2 {
					root = filepath.Join(filepath.Dir(root), "walk")
				}
				if err := os.Mkdir(root, 0o755); err != nil {
					t.Fatal(err)
				}
				n, err := apply(context.Background(), root, bytes.NewReader(buildTar(t, tt.ents...)), ApplyOptions{}, noOpenat2)
				if err != nil {
					t.Fatalf("Apply (noOpenat2=%v): %v", noOpenat2, err)
				}
				if n != int64(tt.bytes) {
					t.Errorf("Apply (noOpenat2=%v) wrote %d bytes, want %d", noOpenat2, n, tt.bytes)
				}
				diffMaps(t, describeTree(t, root), tt.want)
			}
		})
	}
}

func TestApplyHardlinkSharesInode(t *testing.T) {
	root := t.TempDir()
	tarball := buildTar(t, fileEnt("a/f", "data", 0o644), linkEnt("b/g", "/a/f"))
	if _, err := Apply(context.Background(), root, bytes.NewReader(tarball)); err != nil {
		t.Fatal(err)
	}
	var st1, st2 unix.Stat_t
	if err := unix.Lstat(filepath.Join(root, "a/f"), &st1); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lstat(filepath.Join(root, "b/g"), &st2); err != nil {
		t.Fatal(err)
	}
	if st1.Ino != st2.Ino || st1.Nlink != 2 {
		t.Errorf("b/g is not a hardlink of a/f: ino %d/%d nlink %d", st1.Ino, st2.Ino, st1.Nlink)
	}
}

// TestApplyMetadata checks ownership, times, xattrs and device nodes.
func TestApplyMetadata(t *testing.T) {
	testutil.RequiresRoot(t)
	root := t.TempDir()
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 600, time.UTC)
	atime := time.Date(2019, 6, 7, 8, 9, 10, 0, time.UTC)
	owned := func(e ent) ent {
		return e.with(func(h *tar.Header) { h.Uid, h.Gid = 1234, 5678; h.ModTime = mtime; h.AccessTime = atime })
	}
	xattr := func(e ent, k, v string) ent {
		return e.with(func(h *tar.Header) {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords[paxXattrPrefix+k] = v
		})
	}
	tarball := buildTar(t,
		owned(xattr(dirEnt("d/", 0o750), "user.dir", "dv")),
		owned(xattr(fileEnt("d/f", "body", 0o4755), "user.file", "fv")),
		owned(xattr(fileEnt("d/cap", "c", 0o755), "security.capability", "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")),
		owned(xattr(symlinkEnt("d/s", "/target"), "trusted.sym", "sv")),
		owned(charEnt("d/null", 1, 3, 0o666)),
		owned(fifoEnt("d/fifo", 0o622)),
		// Overlayfs' own attributes in a tar are ignored.
		xattr(dirEnt("o/", 0o755), overlayOpaqueXattr, "y"),
		owned(fileEnt("d/late", "x", 0o600)), // created after d's entry: d's times still apply
	)
	if _, err := Apply(context.Background(), root, bytes.NewReader(tarball)); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"d", "d/f", "d/s", "d/null", "d/fifo", "d/late"} {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, name), &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 1234 || st.Gid != 5678 {
			t.Errorf("%s: owner %d:%d, want 1234:5678", name, st.Uid, st.Gid)
		}
		if got := time.Unix(st.Mtim.Unix()); !got.Equal(mtime) {
			t.Errorf("%s: mtime %v, want %v", name, got, mtime)
		}
		if got := time.Unix(st.Atim.Unix()); !got.Equal(atime) {
			t.Errorf("%s: atime %v, want %v", name, got, atime)
		}
	}
	want := map[string]string{
		"d":      "dir 0750",
		"d/f":    `file 4755 "body"`,
		"d/cap":  `file 0755 "c"`,
		"d/s":    "symlink /target",
		"d/null": "char 0666 1/3",
		"d/fifo": "fifo 0622",
		"d/late": `file 0600 "x"`,
		"o":      "dir 0755",
	}
	diffMaps(t, describeTree(t, root), want)
	for _, x := range []struct{ path, name, value string }{
		{"d", "user.dir", "dv"},
		{"d/f", "user.file", "fv"},
		{"d/s", "trusted.sym", "sv"},
	} {
		got, err := getXattrPath(filepath.Join(root, x.path), x.name)
		if err != nil || got != x.value {
			t.Errorf("%s: xattr %s = %q, %v; want %q", x.path, x.name, got, err, x.value)
		}
	}
	if _, err := getXattrPath(filepath.Join(root, "d/cap"), "security.capability"); err != nil {
		t.Errorf("d/cap: security.capability not set (it must be set after chown): %v", err)
	}
	if _, err := getXattrPath(filepath.Join(root, "o"), overlayOpaqueXattr); err == nil {
		t.Errorf("o: trusted.overlay.opaque from a PAX record must be ignored")
	}
}

// TestApplyWhiteouts checks the conversion of OCI whiteouts to overlayfs ones.
func TestApplyWhiteouts(t *testing.T) {
	testutil.RequiresRoot(t)
	tests := []struct {
		name     string
		ents     []ent
		want     map[string]string
		rootOpaq bool
	}{
		{
			name: "whiteout becomes char device 0/0",
			ents: []ent{dirEnt("etc/", 0o755), whEnt("etc/.wh.passwd")},
			want: map[string]string{"etc": "dir 0755", "etc/passwd": "whiteout"},
		},
		{
			name: "whiteout in a directory without entry",
			ents: []ent{whEnt("/a/b/.wh.c")},
			want: map[string]string{"a": "dir 0755", "a/b": "dir 0755", "a/b/c": "whiteout"},
		},
		{
			name: "opaque directory keeps this layer's entries",
			ents: []ent{
				dirEnt("d/", 0o755),
				fileEnt("d/before", "1", 0o644),
				whEnt("d/.wh..wh..opq"),
				fileEnt("d/after", "2", 0o644),
			},
			want: map[string]string{
				"d":        "dir 0755 opaque=y",
				"d/before": `file 0644 "1"`,
				"d/after":  `file 0644 "2"`,
			},
		},
		{
			name: "opaque marker before its directory entry",
			ents: []ent{whEnt("d/.wh..wh..opq"), dirEnt("d/", 0o700)},
			want: map[string]string{"d": "dir 0700 opaque=y"},
		},
		{
			name:     "opaque root",
			ents:     []ent{whEnt(".wh..wh..opq"), fileEnt("f", "x", 0o644)},
			want:     map[string]string{"f": `file 0644 "x"`},
			rootOpaq: true,
		},
		{
			name: "whiteout does not remove a file of the same layer",
			ents: []ent{fileEnt("f", "x", 0o644), whEnt(".wh.f")},
			want: map[string]string{"f": `file 0644 "x"`},
		},
		{
			name: "whiteout of a directory of the same layer makes it opaque",
			ents: []ent{fileEnt("d/f", "x", 0o644), whEnt(".wh.d")},
			want: map[string]string{"d": "dir 0755 opaque=y", "d/f": `file 0644 "x"`},
		},
		{
			name: "file after its whiteout replaces it",
			ents: []ent{whEnt(".wh.f"), fileEnt("f", "x", 0o644)},
			want: map[string]string{"f": `file 0644 "x"`},
		},
		{
			name: "directory after its whiteout is opaque",
			ents: []ent{whEnt(".wh.d"), dirEnt("d/", 0o711)},
			want: map[string]string{"d": "dir 0711 opaque=y"},
		},
		{
			name: "entry below a whiteout turns it into an opaque directory",
			ents: []ent{whEnt(".wh.d"), fileEnt("d/f", "x", 0o644)},
			want: map[string]string{"d": "dir 0755 opaque=y", "d/f": `file 0644 "x"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if _, err := Apply(context.Background(), root, bytes.NewReader(buildTar(t, tt.ents...))); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			diffMaps(t, describeTree(t, root), tt.want)
			v, err := getXattrPath(root, overlayOpaqueXattr)
			if got := err == nil && v == "y"; got != tt.rootOpaq {
				t.Errorf("root opaque = %v, want %v", got, tt.rootOpaq)
			}
		})
	}
}

// TestApplyRefusesEscapes feeds hostile tars. Each must fail with an
// invalid-argument error naming the entry, and nothing beside root may
// change.
func TestApplyRefusesEscapes(t *testing.T) {
	tests := []struct {
		name  string
		ents  func(sentinel string) []ent
		entry string // the refused entry, named in the error
	}{
		{
			name:  "dot-dot",
			ents:  func(string) []ent { return []ent{fileEnt("../x", "pwned", 0o644)} },
			entry: "../x",
		},
		{
			name:  "absolute dot-dot",
			ents:  func(string) []ent { return []ent{fileEnt("/../../x", "pwned", 0o644)} },
			entry: "/../../x",
		},
		{
			name:  "inner dot-dot leaving root",
			ents:  func(string) []ent { return []ent{fileEnt("a/../../sentinel/x", "pwned", 0o644)} },
			entry: "a/../../sentinel/x",
		},
		{
			name:  "directory dot-dot",
			ents:  func(string) []ent { return []ent{dirEnt("../newdir/", 0o777)} },
			entry: "../newdir/",
		},
		{
			name: "write through absolute symlink",
			ents: func(s string) []ent {
				return []ent{symlinkEnt("evil", s), fileEnt("evil/pwned", "pwned", 0o644)}
			},
			entry: "evil/pwned",
		},
		{
			name: "write through relative symlink",
			ents: func(string) []ent {
				return []ent{symlinkEnt("evil", "../sentinel"), fileEnt("evil/pwned", "pwned", 0o644)}
			},
			entry: "evil/pwned",
		},
		{
			name: "write through symlink to ../../..",
			ents: func(string) []ent {
				return []ent{symlinkEnt("evil", "../../.."), fileEnt("evil/tmp/pwned", "pwned", 0o644)}
			},
			entry: "evil/tmp/pwned",
		},
		{
			name: "write through nested symlink",
			ents: func(s string) []ent {
				return []ent{dirEnt("a/", 0o755), symlinkEnt("a/evil", s), fileEnt("a/evil/pwned", "pwned", 0o644)}
			},
			entry: "a/evil/pwned",
		},
		{
			name: "write through symlink inside root",
			ents: func(string) []ent {
				return []ent{dirEnt("usr/lib/", 0o755), symlinkEnt("lib", "usr/lib"), fileEnt("lib/x", "x", 0o644)}
			},
			entry: "lib/x",
		},
		{
			name: "directory replaced by symlink",
			ents: func(s string) []ent {
				return []ent{
					dirEnt("d/", 0o755), fileEnt("d/f1", "ok", 0o644), // d is now the cached parent
					symlinkEnt("d", s),
					fileEnt("d/f2", "pwned", 0o644),
				}
			},
			entry: "d/f2",
		},
		{
			name: "mkdir through symlink",
			ents: func(s string) []ent {
				return []ent{symlinkEnt("evil", s), dirEnt("evil/sub/", 0o777)}
			},
			entry: "evil/sub/",
		},
		{
			name: "symlink created through symlink",
			ents: func(s string) []ent {
				return []ent{symlinkEnt("evil", s), symlinkEnt("evil/ln", "/")}
			},
			entry: "evil/ln",
		},
		{
			name: "whiteout through symlink",
			ents: func(s string) []ent {
				return []ent{symlinkEnt("evil", s), whEnt("evil/.wh.file")}
			},
			entry: "evil/.wh.file",
		},
		{
			name: "opaque through symlink",
			ents: func(s string) []ent {
				return []ent{symlinkEnt("evil", s), whEnt("evil/.wh..wh..opq")}
			},
			entry: "evil/.wh..wh..opq",
		},
		{
			name:  "hardlink to ../../etc/passwd",
			ents:  func(string) []ent { return []ent{linkEnt("h", "../../etc/passwd")} },
			entry: "h",
		},
		{
			name:  "hardlink to absolute dot-dot",
			ents:  func(string) []ent { return []ent{linkEnt("h", "/../sentinel/file")} },
			entry: "h",
		},
		{
			name: "hardlink through symlink",
			ents: func(s string) []ent {
				return []ent{symlinkEnt("evil", s), linkEnt("h", "evil/file")}
			},
			entry: "h",
		},
		{
			name: "hardlink through relative symlink",
			ents: func(string) []ent {
				return []ent{symlinkEnt("evil", "../sentinel"), linkEnt("h", "evil/file")}
			},
			entry: "h",
		},
		{
			name: "hardlink placed through symlink",
			ents: func(s string) []ent {
				return []ent{fileEnt("f", "x", 0o644), symlinkEnt("evil", s), linkEnt("evil/h", "f")}
			},
			entry: "evil/h",
		},
		{
			name: "device through symlink",
			ents: func(s string) []ent {
				return []ent{symlinkEnt("evil", s), fifoEnt("evil/fifo", 0o666)}
			},
			entry: "evil/fifo",
		},
	}
	for _, mode := range []struct {
		name      string
		noOpenat2 bool
	}{{"openat2", false}, {"walk", true}} {
		for _, tt := range tests {
			t.Run(mode.name+"/"+tt.name, func(t *testing.T) {
				dir := t.TempDir()
				root := filepath.Join(dir, "root")
				sentinel := filepath.Join(dir, "sentinel")
				for _, d := range []string{root, sentinel, filepath.Join(sentinel, "sub")} {
					if err := os.Mkdir(d, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				if err := os.WriteFile(filepath.Join(sentinel, "file"), []byte("keep"), 0o644); err != nil {
					t.Fatal(err)
				}
				before := snapshotOutside(t, dir, root)

				_, err := apply(context.Background(), root, bytes.NewReader(buildTar(t, tt.ents(sentinel)...)), ApplyOptions{}, mode.noOpenat2)
				if err == nil {
					t.Fatalf("Apply succeeded, want an error")
				}
				if !errors.Is(err, errdefs.ErrInvalidArgument) {
					t.Errorf("error %v is not an invalid-argument error", err)
				}
				if !strings.Contains(err.Error(), strconvQuote(tt.entry)) {
					t.Errorf("error %q does not name entry %q", err, tt.entry)
				}
				if after := snapshotOutside(t, dir, root); after != before {
					t.Errorf("Apply changed files outside root:\nbefore:\n%s\nafter:\n%s", before, after)
				}
			})
		}
	}
}

func strconvQuote(s string) string { return `"` + s + `"` }

func TestApplyInvalidEntries(t *testing.T) {
	tests := []struct {
		name string
		ents []ent
	}{
		{"hardlink to missing file", []ent{linkEnt("h", "nothing")}},
		{"hardlink to directory", []ent{dirEnt("d/", 0o755), linkEnt("h", "d")}},
		{"hardlink to itself", []ent{linkEnt("h", "./h")}},
		{"file under a file", []ent{fileEnt("f", "x", 0o644), fileEnt("f/g", "y", 0o644)}},
		{"root replaced by a file", []ent{fileEnt(".", "", 0o644)}},
		{"empty whiteout name", []ent{whEnt("d/.wh.")}},
		{"symlink without target", []ent{symlinkEnt("s", "")}},
		{"unknown type", []ent{base('Z', "z", 0o644)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(buildTar(t, tt.ents...)))
			if !errors.Is(err, errdefs.ErrInvalidArgument) {
				t.Fatalf("Apply error = %v, want an invalid-argument error", err)
			}
		})
	}
}

func TestApplyTruncatedTar(t *testing.T) {
	tarball := buildTar(t, fileEnt("f", strings.Repeat("x", 4096), 0o644))
	_, err := Apply(context.Background(), t.TempDir(), bytes.NewReader(tarball[:1024]))
	if err == nil {
		t.Fatal("Apply of a truncated tar succeeded")
	}
}

func TestApplyCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Apply(ctx, t.TempDir(), bytes.NewReader(buildTar(t, fileEnt("f", "x", 0o644))))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Apply error = %v, want context.Canceled", err)
	}
}

// TestApplyWithOptions covers the options for non-layer tars (docker cp).
func TestApplyWithOptions(t *testing.T) {
	foreign := func(e ent) ent {
		return e.with(func(h *tar.Header) { h.Uid, h.Gid = os.Getuid()+1000, os.Getgid()+1000 })
	}
	tests := []struct {
		name string
		opts ApplyOptions
		ents []ent
		want map[string]string
	}{
		{
			name: "literal whiteouts",
			opts: ApplyOptions{LiteralWhiteouts: true},
			ents: []ent{fileEnt("d/.wh.x", "not a whiteout", 0o644), fileEnt(".wh..wh..opq", "", 0o600)},
			want: map[string]string{
				"d":            "dir 0755",
				"d/.wh.x":      `file 0644 "not a whiteout"`,
				".wh..wh..opq": `file 0600 ""`,
			},
		},
		{
			name: "no lchown",
			opts: ApplyOptions{NoLchown: true},
			ents: []ent{
				foreign(dirEnt("d/", 0o750)),
				foreign(fileEnt("d/f", "x", 0o640)),
				foreign(symlinkEnt("d/s", "f")),
				foreign(fifoEnt("d/p", 0o600)),
			},
			want: map[string]string{
				"d": "dir 0750", "d/f": `file 0640 "x"`, "d/s": "symlink f", "d/p": "fifo 0600",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if _, err := ApplyWithOptions(context.Background(), root, bytes.NewReader(buildTar(t, tt.ents...)), tt.opts); err != nil {
				t.Fatalf("ApplyWithOptions: %v", err)
			}
			diffMaps(t, describeTree(t, root), tt.want)
			if tt.opts.NoLchown {
				for p := range tt.want {
					var st unix.Stat_t
					if err := unix.Lstat(filepath.Join(root, p), &st); err != nil {
						t.Fatal(err)
					}
					if int(st.Uid) != os.Geteuid() {
						t.Errorf("%s owned by %d, want the caller %d", p, st.Uid, os.Geteuid())
					}
				}
			}
		})
	}
}

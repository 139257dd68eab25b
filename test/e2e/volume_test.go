package e2e

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/testutil"
)

// tarEntry is one node added to a test image.
type tarEntry struct {
	hdr  tar.Header
	data string
}

// importImage imports, as ref, the busybox image with extra appended to
// its tar: one layer, built in the test.
func (e *env) importImage(ref string, extra []tarEntry) {
	e.t.Helper()
	base, err := os.Open(testutil.BusyboxTar(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	defer base.Close()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tr := tar.NewReader(base)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			e.t.Fatal(err)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			e.t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			e.t.Fatal(err)
		}
	}
	mtime := time.Date(2023, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, x := range extra {
		hdr := x.hdr
		hdr.Format = tar.FormatPAX
		if hdr.ModTime.IsZero() {
			hdr.ModTime = mtime
		}
		if hdr.Typeflag == tar.TypeReg {
			hdr.Size = int64(len(x.data))
		}
		if err := tw.WriteHeader(&hdr); err != nil {
			e.t.Fatal(err)
		}
		if x.data != "" {
			io.WriteString(tw, x.data)
		}
	}
	if err := tw.Close(); err != nil {
		e.t.Fatal(err)
	}
	path := filepath.Join(e.dir, strings.ReplaceAll(ref, ":", "_")+".tar")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		e.t.Fatal(err)
	}
	e.must("import", path, ref)
}

func dirEntry(name string, mode int64, uid, gid int) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: gid}}
}

func fileEntry(name string, mode int64, uid, gid int, data string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Uid: uid, Gid: gid}, data: data}
}

func linkEntry(name, target string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

// volumePath is the host directory of a volume.
func (e *env) volumePath(name string) string {
	e.t.Helper()
	return strings.TrimSpace(e.must("volume", "inspect", "-f", "{{.Mountpoint}}", name))
}

// listDir returns the sorted names in dir.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// TestVolumeCopyUp: a new (empty) volume over a directory of the image
// starts with a copy of it that keeps owners, modes, times, xattrs, link
// types and special files; a volume with data keeps it; nocopy copies
// nothing (issue 7, finding 7: this panicked and left the --rm container
// behind).
func TestVolumeCopyUp(t *testing.T) {
	e := newEnv(t)

	r := e.run("run", "--rm", "-v", "newvol:/etc", "busybox", "ls", "/etc")
	if r.code != 0 || !strings.Contains(r.stdout, "passwd") || !strings.Contains(r.stdout, "group") {
		t.Fatalf("run -v newvol:/etc ls /etc: %s", r)
	}
	if ps := strings.TrimSpace(e.must("ps", "-aq")); ps != "" {
		t.Fatalf("--rm container left behind: %q", ps)
	}
	etc := e.volumePath("newvol")
	if b, err := os.ReadFile(filepath.Join(etc, "passwd")); err != nil || !strings.HasPrefix(string(b), "root:x:0:0:") {
		t.Fatalf("volume's passwd: %q, %v", b, err)
	}

	xattr := tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "data/x", Mode: 0o600, PAXRecords: map[string]string{"SCHILY.xattr.user.berth": "kept"}}, data: "x"}
	e.importImage("copyimg:1", []tarEntry{
		dirEntry("data", 0o751, 11, 12),
		fileEntry("data/f", 0o640, 1234, 5678, "file\n"),
		fileEntry("data/suid", 0o4755, 0, 0, "#!/bin/sh\n"),
		dirEntry("data/sub", 0o750, 42, 43),
		fileEntry("data/sub/deep", 0o604, 7, 8, "deep\n"),
		linkEntry("data/rel", "f"),
		linkEntry("data/abs", "/etc/passwd"),
		{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "data/hard", Linkname: "data/f"}},
		{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "data/fifo", Mode: 0o620, Uid: 3, Gid: 4}},
		{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "data/null", Mode: 0o666, Devmajor: 1, Devminor: 3}},
		xattr,
	})
	if out := e.must("run", "--rm", "-v", "cv:/data", "copyimg:1", "cat", "/data/f", "/data/sub/deep"); out != "file\ndeep\n" {
		t.Fatalf("container reads its volume: %q", out)
	}
	vol := e.volumePath("cv")
	check := func(rel string, typ uint32, mode uint32, uid, gid uint32) *unix.Stat_t {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(vol, rel), &st); err != nil {
			t.Fatalf("volume lacks %s: %v", rel, err)
		}
		if st.Mode&unix.S_IFMT != typ || (typ != unix.S_IFLNK && st.Mode&0o7777 != mode) || st.Uid != uid || st.Gid != gid {
			t.Fatalf("%s: mode %o owner %d:%d, want %o %o %d:%d", rel, st.Mode, st.Uid, st.Gid, typ, mode, uid, gid)
		}
		return &st
	}
	root := check(".", unix.S_IFDIR, 0o751, 11, 12)
	_ = root
	f := check("f", unix.S_IFREG, 0o640, 1234, 5678)
	check("suid", unix.S_IFREG, 0o4755, 0, 0)
	check("sub", unix.S_IFDIR, 0o750, 42, 43)
	check("sub/deep", unix.S_IFREG, 0o604, 7, 8)
	check("rel", unix.S_IFLNK, 0, 0, 0)
	check("abs", unix.S_IFLNK, 0, 0, 0)
	check("fifo", unix.S_IFIFO, 0o620, 3, 4)
	null := check("null", unix.S_IFCHR, 0o666, 0, 0)
	if unix.Major(null.Rdev) != 1 || unix.Minor(null.Rdev) != 3 {
		t.Fatalf("device copied as %d:%d", unix.Major(null.Rdev), unix.Minor(null.Rdev))
	}
	if hard := check("hard", unix.S_IFREG, 0o640, 1234, 5678); hard.Ino != f.Ino {
		t.Fatal("a hard link was copied as a separate file")
	}
	if f.Mtim.Sec != time.Date(2023, 5, 6, 7, 8, 9, 0, time.UTC).Unix() {
		t.Fatalf("mtime not kept: %d", f.Mtim.Sec)
	}
	for link, want := range map[string]string{"rel": "f", "abs": "/etc/passwd"} {
		if got, err := os.Readlink(filepath.Join(vol, link)); err != nil || got != want {
			t.Fatalf("link %s -> %q (%v), want %q", link, got, err, want)
		}
	}
	val := make([]byte, 16)
	if n, err := unix.Lgetxattr(filepath.Join(vol, "x"), "user.berth", val); err != nil || string(val[:n]) != "kept" {
		t.Fatalf("xattr not copied: %q, %v", val[:n], err)
	}

	// A volume that has data keeps it, and is not copied into again.
	os.WriteFile(filepath.Join(vol, "f"), []byte("changed\n"), 0o644)
	os.Remove(filepath.Join(vol, "sub/deep"))
	e.must("run", "--rm", "-v", "cv:/data", "copyimg:1", "true")
	if b, _ := os.ReadFile(filepath.Join(vol, "f")); string(b) != "changed\n" {
		t.Fatalf("non-empty volume overwritten: %q", b)
	}
	if _, err := os.Lstat(filepath.Join(vol, "sub/deep")); err == nil {
		t.Fatal("non-empty volume copied into again")
	}
	e.must("volume", "create", "own")
	own := e.volumePath("own")
	os.WriteFile(filepath.Join(own, "mine"), []byte("mine"), 0o644)
	e.must("run", "--rm", "-v", "own:/data", "copyimg:1", "true")
	if got := listDir(t, own); strings.Join(got, ",") != "mine" {
		t.Fatalf("volume with data got %v", got)
	}

	// nocopy, in both spellings; an anonymous volume is copied into too.
	e.must("run", "--rm", "-v", "nc1:/data:nocopy", "copyimg:1", "true")
	e.must("run", "--rm", "--mount", "type=volume,src=nc2,dst=/data,volume-nocopy", "copyimg:1", "true")
	for _, v := range []string{"nc1", "nc2"} {
		if got := listDir(t, e.volumePath(v)); len(got) != 0 {
			t.Fatalf("nocopy volume %s got %v", v, got)
		}
	}
	if out := e.must("run", "--rm", "-v", "/data", "copyimg:1", "cat", "/data/sub/deep"); out != "deep\n" {
		t.Fatalf("anonymous volume: %q", out)
	}
	// So is the anonymous volume of an image's VOLUME.
	e.must("import", "--change", "VOLUME /data", filepath.Join(e.dir, "copyimg_1.tar"), "copyimg:vol")
	e.must("run", "--name", "imgvol", "copyimg:vol", "true")
	name := e.inspect("imgvol", "{{range .Mounts}}{{.Name}}{{end}}")
	if got := listDir(t, e.volumePath(name)); strings.Join(got, ",") != "abs,f,fifo,hard,null,rel,sub,suid,x" {
		t.Fatalf("image VOLUME got %v", got)
	}
	e.must("rm", "-v", "imgvol")
}

// TestVolumeCopyUpHostileSymlinks: the image's symlinks are followed inside
// the container's root when a volume's mount point is resolved for
// copy-up, never on the host: a host directory is neither read into the
// volume nor written (issue 7, finding 7).
func TestVolumeCopyUpHostileSymlinks(t *testing.T) {
	e := newEnv(t)
	canary := filepath.Join(t.TempDir(), "canary")
	os.MkdirAll(filepath.Join(canary, "sub"), 0o755)
	os.WriteFile(filepath.Join(canary, "sub", "hostsecret"), []byte("host"), 0o600)
	absent := filepath.Join(t.TempDir(), "absent") // a host dir the image lacks
	os.MkdirAll(filepath.Join(absent, "sub"), 0o755)
	os.WriteFile(filepath.Join(absent, "sub", "hostsecret2"), []byte("host"), 0o600)
	snapshot := func() string {
		var b strings.Builder
		for _, d := range []string{canary, absent} {
			filepath.Walk(d, func(p string, fi os.FileInfo, err error) error {
				if err == nil {
					b.WriteString(p + " " + fi.Mode().String() + " " + fi.ModTime().String() + "\n")
				}
				return nil
			})
		}
		return b.String()
	}
	before := snapshot()

	up := strings.Repeat("../", 30)
	// The image holds a directory at the canary's absolute path too: inside
	// the container's root, that is where the links lead.
	var extra []tarEntry
	parts := strings.Split(strings.Trim(canary, "/"), "/")
	for i := range parts {
		extra = append(extra, dirEntry(strings.Join(parts[:i+1], "/"), 0o755, 0, 0))
	}
	extra = append(extra,
		dirEntry(strings.Trim(canary, "/")+"/sub", 0o755, 0, 0),
		fileEntry(strings.Trim(canary, "/")+"/sub/imgfile", 0o644, 0, 0, "from image\n"),
		linkEntry("x", canary),
		linkEntry("y", up+strings.Trim(canary, "/")),
		linkEntry("z", absent),
		linkEntry("w", up+strings.Trim(absent, "/")),
	)
	e.importImage("hostile:1", extra)

	for i, dst := range []string{"/x/sub", "/y/sub"} {
		vol := []string{"hx", "hy"}[i]
		r := e.run("run", "--rm", "-v", vol+":"+dst, "hostile:1", "ls", dst)
		if r.code != 0 || strings.TrimSpace(r.stdout) != "imgfile" {
			t.Fatalf("volume at %s: %s", dst, r)
		}
		if got := listDir(t, e.volumePath(vol)); strings.Join(got, ",") != "imgfile" {
			t.Fatalf("volume at %s holds %v, want the image's imgfile only", dst, got)
		}
	}
	for i, dst := range []string{"/z/sub", "/w/sub"} {
		vol := []string{"hz", "hw"}[i]
		r := e.run("run", "--rm", "-v", vol+":"+dst, "hostile:1", "ls", dst)
		if r.code != 0 || strings.TrimSpace(r.stdout) != "" {
			t.Fatalf("volume at %s: %s", dst, r)
		}
		if got := listDir(t, e.volumePath(vol)); len(got) != 0 {
			t.Fatalf("volume at %s holds %v, want nothing", dst, got)
		}
	}
	// Anonymous volumes resolve the same way.
	if out := e.must("run", "--rm", "-v", "/y/sub", "hostile:1", "ls", "/y/sub"); strings.TrimSpace(out) != "imgfile" {
		t.Fatalf("anonymous volume at /y/sub: %q", out)
	}
	if after := snapshot(); after != before {
		t.Fatalf("host directories changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestVolumeCopyUpFailureLeavesNothing: when copy-up fails, run --rm
// reports it (exit 125) and leaves no container, mount or bundle behind.
func TestVolumeCopyUpFailureLeavesNothing(t *testing.T) {
	e := newEnv(t)
	// Deeper than copy-up follows (1024 levels).
	deep := "data"
	extra := []tarEntry{dirEntry(deep, 0o755, 0, 0)}
	for range 1100 {
		deep += "/d"
		extra = append(extra, dirEntry(deep, 0o755, 0, 0))
	}
	e.importImage("deepimg:1", extra)
	r := e.run("run", "--rm", "-v", "dv:/data", "deepimg:1", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "volume dv") || strings.Contains(r.stderr, "panic") {
		t.Fatalf("copy-up failure: %s", r)
	}
	if ps := strings.TrimSpace(e.must("ps", "-aq")); ps != "" {
		t.Fatalf("--rm container left behind after a failed start: %q", ps)
	}
	raw, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], e.dir) {
			t.Fatalf("mount left behind: %s", f[4])
		}
	}
	// nocopy is the way out.
	e.must("run", "--rm", "-v", "dv2:/data:nocopy", "deepimg:1", "true")
}

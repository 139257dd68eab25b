package testutil

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// HostBusybox is the busybox binary the fixtures are built from: Debian's
// busybox-static, which runs in a rootfs without any libraries.
const HostBusybox = "/bin/busybox"

// The official busybox image's account files (buildroot's skeleton).
const (
	busyboxPasswd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`
	busyboxGroup = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nobody:x:65534:
`
)

// busyboxEntry is one node of the busybox image tree.
type busyboxEntry struct {
	name   string // relative, slash-separated
	mode   os.FileMode
	data   string // file contents, when not the busybox binary
	link   string // symlink target, when a symlink
	binary bool   // the host's busybox
}

// busyboxTree describes the image: its directories, account files, the
// binary and a relative link bin/<applet> -> busybox for every applet.
func busyboxTree(t testing.TB) []busyboxEntry {
	t.Helper()
	st, err := os.Stat(HostBusybox)
	if err != nil {
		Skip(t, HostBusybox+" is missing: install Debian's busybox-static")
	}
	if f, err := elf.Open(HostBusybox); err == nil {
		dynamic := false
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				dynamic = true
			}
		}
		f.Close()
		if dynamic {
			Skip(t, HostBusybox+" is dynamically linked: install busybox-static")
		}
	}
	out, err := exec.Command(HostBusybox, "--list").Output()
	if err != nil {
		t.Fatalf("%s --list: %v", HostBusybox, err)
	}

	dir := func(name string, mode os.FileMode) busyboxEntry {
		return busyboxEntry{name: name, mode: os.ModeDir | mode}
	}
	tree := []busyboxEntry{
		dir("bin", 0o755),
		{name: "bin/busybox", mode: st.Mode().Perm(), binary: true},
		dir("dev", 0o755),
		dir("etc", 0o755),
		{name: "etc/group", mode: 0o644, data: busyboxGroup},
		{name: "etc/passwd", mode: 0o644, data: busyboxPasswd},
		dir("home", 0o755),
		dir("proc", 0o755),
		dir("root", 0o700),
		dir("sbin", 0o755),
		dir("sys", 0o755),
		dir("tmp", os.ModeSticky|0o777),
		dir("usr", 0o755),
		dir("usr/bin", 0o755),
		dir("usr/sbin", 0o755),
		dir("var", 0o755),
		dir("var/spool", 0o755),
		dir("var/spool/mail", 0o755),
		dir("var/www", 0o755),
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		tree = append(tree, busyboxEntry{name: "bin/" + applet, mode: os.ModeSymlink | 0o777, link: "busybox"})
	}
	return tree
}

// BusyboxRootfs builds a minimal busybox image root filesystem in dir (which
// may exist) from the host's static busybox, the way the official image
// looks: every applet linked in /bin, the image's /etc/passwd and
// /etc/group, and the usual empty directories. It skips the test (fails it
// in CI) when the host has no static busybox.
func BusyboxRootfs(t testing.TB, dir string) {
	t.Helper()
	for _, e := range busyboxTree(t) {
		p := filepath.Join(dir, filepath.FromSlash(e.name))
		var err error
		switch {
		case e.mode.IsDir():
			if err = os.MkdirAll(p, 0o755); err == nil {
				err = os.Chmod(p, e.mode.Perm()|e.mode&os.ModeSticky)
			}
		case e.mode&os.ModeSymlink != 0:
			err = os.Symlink(e.link, p)
		case e.binary:
			err = copyFile(HostBusybox, p, e.mode)
		default:
			if err = os.WriteFile(p, []byte(e.data), e.mode); err == nil {
				err = os.Chmod(p, e.mode)
			}
		}
		if err != nil {
			t.Fatalf("building busybox rootfs: %v", err)
		}
	}
}

// BusyboxTar writes the tree of BusyboxRootfs as an uncompressed tar file
// in a fresh t.TempDir() and returns its path, for tests of image import.
func BusyboxTar(t testing.TB) string {
	t.Helper()
	tree := busyboxTree(t)
	path := filepath.Join(t.TempDir(), "busybox.tar")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	mtime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC) // reproducible
	for _, e := range tree {
		hdr := &tar.Header{
			Name:    e.name,
			Mode:    int64(e.mode.Perm()),
			ModTime: mtime,
			Format:  tar.FormatPAX,
		}
		if e.mode&os.ModeSticky != 0 {
			hdr.Mode |= 0o1000
		}
		var body io.Reader
		switch {
		case e.mode.IsDir():
			hdr.Typeflag, hdr.Name = tar.TypeDir, e.name+"/"
		case e.mode&os.ModeSymlink != 0:
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, e.link
		case e.binary:
			bin, err := os.ReadFile(HostBusybox)
			if err != nil {
				t.Fatal(err)
			}
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(bin))
			body = bytes.NewReader(bin)
		default:
			hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(e.data))
			body = strings.NewReader(e.data)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if body != nil {
			if _, err := io.Copy(tw, body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode)
}

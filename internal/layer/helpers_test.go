//go:build linux

package layer

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// ent is one entry of a test tar.
type ent struct {
	hdr  tar.Header
	body string
}

var testTime = time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)

func base(typ byte, name string, mode int64) ent {
	return ent{hdr: tar.Header{
		Typeflag: typ, Name: name, Mode: mode,
		Uid: os.Getuid(), Gid: os.Getgid(),
		ModTime: testTime, Format: tar.FormatPAX,
	}}
}

func dirEnt(name string, mode int64) ent { return base(tar.TypeDir, name, mode) }

func fileEnt(name, body string, mode int64) ent {
	e := base(tar.TypeReg, name, mode)
	e.body = body
	e.hdr.Size = int64(len(body))
	return e
}

func symlinkEnt(name, target string) ent {
	e := base(tar.TypeSymlink, name, 0o777)
	e.hdr.Linkname = target
	return e
}

func linkEnt(name, target string) ent {
	e := base(tar.TypeLink, name, 0o644)
	e.hdr.Linkname = target
	return e
}

func fifoEnt(name string, mode int64) ent { return base(tar.TypeFifo, name, mode) }

func charEnt(name string, major, minor int64, mode int64) ent {
	e := base(tar.TypeChar, name, mode)
	e.hdr.Devmajor, e.hdr.Devminor = major, minor
	return e
}

func whEnt(name string) ent { return fileEnt(name, "", 0) }

func (e ent) with(f func(h *tar.Header)) ent {
	f(&e.hdr)
	return e
}

func buildTar(t testing.TB, ents ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %q: %v", h.Name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatalf("tar body %q: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// describeTree describes every file below root (not root itself), one
// string per path: type, permission bits and content or target.
func describeTree(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = describe(t, p)
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return out
}

func describe(t testing.TB, p string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat %s: %v", p, err)
	}
	perm := st.Mode & 0o7777
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		s := fmt.Sprintf("dir %04o", perm)
		if v, err := getXattrPath(p, overlayOpaqueXattr); err == nil {
			s += " opaque=" + v
		}
		return s
	case unix.S_IFREG:
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("file %04o %q", perm, b)
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			t.Fatal(err)
		}
		return "symlink " + target
	case unix.S_IFCHR:
		if st.Rdev == 0 {
			return "whiteout"
		}
		return fmt.Sprintf("char %04o %d/%d", perm, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	case unix.S_IFBLK:
		return fmt.Sprintf("block %04o %d/%d", perm, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		return fmt.Sprintf("fifo %04o", perm)
	}
	return fmt.Sprintf("mode %o", st.Mode)
}

func getXattrPath(p, name string) (string, error) {
	buf := make([]byte, 4096)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

func diffMaps(t testing.TB, got, want map[string]string) {
	t.Helper()
	keys := map[string]bool{}
	for k := range got {
		keys[k] = true
	}
	for k := range want {
		keys[k] = true
	}
	var sorted []string
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		g, gok := got[k]
		w, wok := want[k]
		switch {
		case !gok:
			t.Errorf("%s: missing, want %s", k, w)
		case !wok:
			t.Errorf("%s: unexpected %s", k, g)
		case g != w:
			t.Errorf("%s: got %s, want %s", k, g, w)
		}
	}
}

// snapshotOutside describes everything below dir except the subtree skip,
// with times, so that any change made outside skip shows.
func snapshotOutside(t testing.TB, dir, skip string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s mode=%o uid=%d nlink=%d size=%d mtime=%d.%d", p, st.Mode, st.Uid, st.Nlink, st.Size, st.Mtim.Sec, st.Mtim.Nsec)
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " sha=%x", sha256.Sum256(data))
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return b.String()
}

// tarEntry is a tar entry reduced to what a comparison of trees needs.
type tarEntry struct {
	Name     string
	Type     byte
	Mode     int64
	Uid, Gid int
	Size     int64
	Link     string
	Mtime    int64
	Dev      string
	Xattrs   string
	Sum      string
}

func (e tarEntry) String() string {
	return fmt.Sprintf("%s type=%c mode=%o owner=%d:%d size=%d link=%q mtime=%d dev=%s xattrs=%s sum=%.12s",
		e.Name, e.Type, e.Mode, e.Uid, e.Gid, e.Size, e.Link, e.Mtime, e.Dev, e.Xattrs, e.Sum)
}

func readTar(t testing.TB, data []byte) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		var xs []string
		for k, v := range h.PAXRecords {
			if strings.HasPrefix(k, paxXattrPrefix) {
				xs = append(xs, fmt.Sprintf("%s=%q", k[len(paxXattrPrefix):], v))
			}
		}
		sort.Strings(xs)
		e := tarEntry{
			Name: h.Name, Type: h.Typeflag, Mode: h.Mode, Uid: h.Uid, Gid: h.Gid,
			Size: h.Size, Link: h.Linkname, Mtime: h.ModTime.Unix(),
			Xattrs: strings.Join(xs, ","), Sum: fmt.Sprintf("%x", sha256.Sum256(body)),
		}
		if h.Typeflag == tar.TypeChar || h.Typeflag == tar.TypeBlock {
			e.Dev = fmt.Sprintf("%d/%d", h.Devmajor, h.Devminor)
		}
		out = append(out, e)
	}
}

func entryNames(es []tarEntry) []string {
	var names []string
	for _, e := range es {
		names = append(names, e.Name)
	}
	return names
}

func diffEntries(t testing.TB, got, want []tarEntry) {
	t.Helper()
	gs := make([]string, len(got))
	for i, e := range got {
		gs[i] = e.String()
	}
	ws := make([]string, len(want))
	for i, e := range want {
		ws[i] = e.String()
	}
	if strings.Join(gs, "\n") != strings.Join(ws, "\n") {
		t.Errorf("tar entries differ:\n--- got\n%s\n--- want\n%s", strings.Join(gs, "\n"), strings.Join(ws, "\n"))
	}
}

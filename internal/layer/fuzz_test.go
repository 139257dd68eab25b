//go:build linux

package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzApply builds tars from a small vocabulary of hostile names, link
// targets and entry types, applies them, and checks that nothing outside
// root changed, whatever Apply returned.
func FuzzApply(f *testing.F) {
	f.Add([]byte{0, 0, 0})
	f.Add([]byte{2, 0x12, 1, 1, 0x20, 0})             // symlink a -> ../sentinel, file a/b
	f.Add([]byte{2, 0x10, 2, 1, 0x30, 0})             // symlink to the sentinel's absolute path, then through it
	f.Add([]byte{3, 0x02, 6, 1, 0x00, 0})             // hardlink to ../../sentinel/file
	f.Add([]byte{0, 0x01, 0, 2, 0x01, 3, 1, 0x11, 0}) // dir a, symlink a, file a/a
	f.Add([]byte{1, 0x05, 0, 5, 0x50, 0, 4, 0x20, 0}) // whiteouts
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		// Three levels down, so that three ".." reach no further than dir.
		root := filepath.Join(dir, "x", "y", "root")
		sentinel := filepath.Join(dir, "sentinel")
		if err := os.MkdirAll(root, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(sentinel, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sentinel, "file"), []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
		before := snapshotOutside(t, dir, root)
		tarball := fuzzTar(data, sentinel)
		// Both ways of resolving paths, one after the other in the same root.
		for _, noOpenat2 := range []bool{false, true} {
			apply(context.Background(), root, bytes.NewReader(tarball), ApplyOptions{}, noOpenat2)
			if after := snapshotOutside(t, dir, root); after != before {
				t.Fatalf("Apply (noOpenat2=%v) changed files outside root:\nbefore:\n%s\nafter:\n%s", noOpenat2, before, after)
			}
		}
	})
}

// fuzzTar turns data into a tar: each entry takes three bytes, a type,
// a name (two components, 4 bits each) and a link target.
func fuzzTar(data []byte, sentinel string) []byte {
	comps := []string{"", "a", "..", "b", ".", ".wh.a", ".wh..wh..opq", "sentinel", "/", ".wh.b", "a/..", "../..", "c", "", "a", "b"}
	targets := []string{"a", "../sentinel", sentinel, "/", "..", "../../..", "../../sentinel/file", "a/b", ".", sentinel + "/file", "b", "a/../.."}
	types := []byte{tar.TypeDir, tar.TypeReg, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo, tar.TypeChar, tar.TypeReg, tar.TypeDir}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for len(data) >= 3 {
		typ := types[int(data[0])%len(types)]
		name := strings.Join([]string{comps[data[1]>>4], comps[data[1]&15]}, "/")
		if data[0]&0x80 != 0 {
			name = "/" + name
		}
		hdr := &tar.Header{
			Typeflag: typ, Name: name, Mode: 0o755,
			Uid: os.Getuid(), Gid: os.Getgid(), Format: tar.FormatPAX,
		}
		switch typ {
		case tar.TypeSymlink, tar.TypeLink:
			hdr.Linkname = targets[int(data[2])%len(targets)]
		case tar.TypeReg:
			hdr.Size = int64(data[2] % 8)
		}
		data = data[3:]
		if tw.WriteHeader(hdr) != nil {
			continue
		}
		tw.Write(bytes.Repeat([]byte{'x'}, int(hdr.Size)))
	}
	tw.Close()
	return buf.Bytes()
}

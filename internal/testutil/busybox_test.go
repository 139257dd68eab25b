package testutil

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestBusyboxRootfs(t *testing.T) {
	dir := t.TempDir()
	BusyboxRootfs(t, dir)

	tests := []struct {
		path string
		mode os.FileMode // type and permission bits
		link string
	}{
		{path: "bin", mode: os.ModeDir | 0o755},
		{path: "bin/busybox", mode: 0o755},
		{path: "bin/sh", mode: os.ModeSymlink | 0o777, link: "busybox"},
		{path: "bin/nc", mode: os.ModeSymlink | 0o777, link: "busybox"},
		{path: "bin/[", mode: os.ModeSymlink | 0o777, link: "busybox"},
		{path: "etc/passwd", mode: 0o644},
		{path: "etc/group", mode: 0o644},
		{path: "root", mode: os.ModeDir | 0o700},
		{path: "tmp", mode: os.ModeDir | os.ModeSticky | 0o777},
		{path: "home", mode: os.ModeDir | 0o755},
		{path: "usr/bin", mode: os.ModeDir | 0o755},
		{path: "usr/sbin", mode: os.ModeDir | 0o755},
		{path: "sbin", mode: os.ModeDir | 0o755},
		{path: "var", mode: os.ModeDir | 0o755},
		{path: "proc", mode: os.ModeDir | 0o755},
		{path: "sys", mode: os.ModeDir | 0o755},
		{path: "dev", mode: os.ModeDir | 0o755},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			p := filepath.Join(dir, tc.path)
			st, err := os.Lstat(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := st.Mode() & (os.ModeType | os.ModePerm | os.ModeSticky); got != tc.mode {
				t.Errorf("mode = %v, want %v", got, tc.mode)
			}
			if tc.link != "" {
				if target, _ := os.Readlink(p); target != tc.link {
					t.Errorf("link target = %q, want %q", target, tc.link)
				}
			}
		})
	}

	// Every applet is linked, relatively.
	out, err := exec.Command(HostBusybox, "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" {
			continue
		}
		if target, err := os.Readlink(filepath.Join(dir, "bin", applet)); err != nil || target != "busybox" {
			t.Errorf("bin/%s: %q, %v", applet, target, err)
		}
	}

	passwd, _ := os.ReadFile(filepath.Join(dir, "etc/passwd"))
	group, _ := os.ReadFile(filepath.Join(dir, "etc/group"))
	for _, want := range []string{"root:x:0:0:root:/root:/bin/sh\n", "nobody:x:65534:65534:nobody:/home:/bin/false\n"} {
		if !strings.Contains(string(passwd), want) {
			t.Errorf("passwd lacks %q", want)
		}
	}
	for _, want := range []string{"root:x:0:\n", "wheel:x:10:root\n", "nobody:x:65534:\n"} {
		if !strings.Contains(string(group), want) {
			t.Errorf("group lacks %q", want)
		}
	}

	// The copied binary runs and its links work.
	if out, err := exec.Command(filepath.Join(dir, "bin", "echo"), "hi").Output(); err != nil || string(out) != "hi\n" {
		t.Errorf("bin/echo hi = %q, %v", out, err)
	}
}

type tarEntry struct {
	name, link string
	typ        byte
	mode       int64
	size       int64
}

func readTar(t *testing.T, path string) []tarEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []tarEntry
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s owned by %d:%d, want root", h.Name, h.Uid, h.Gid)
		}
		out = append(out, tarEntry{name: strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/"), link: h.Linkname, typ: h.Typeflag, mode: h.Mode & 0o7777, size: h.Size})
	}
}

func TestBusyboxTar(t *testing.T) {
	entries := readTar(t, BusyboxTar(t))
	byName := map[string]tarEntry{}
	for _, e := range entries {
		byName[e.name] = e
	}
	st, err := os.Stat(HostBusybox)
	if err != nil {
		t.Fatal(err)
	}
	tests := []tarEntry{
		{name: "bin", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/busybox", typ: tar.TypeReg, mode: 0o755, size: st.Size()},
		{name: "bin/sh", typ: tar.TypeSymlink, mode: 0o777, link: "busybox"},
		{name: "tmp", typ: tar.TypeDir, mode: 0o1777},
		{name: "root", typ: tar.TypeDir, mode: 0o700},
		{name: "etc/passwd", typ: tar.TypeReg, mode: 0o644, size: int64(len(busyboxPasswd))},
		{name: "etc/group", typ: tar.TypeReg, mode: 0o644, size: int64(len(busyboxGroup))},
	}
	for _, want := range tests {
		if got, ok := byName[want.name]; !ok || got != want {
			t.Errorf("%s = %+v, want %+v", want.name, got, want)
		}
	}
	// Directories come before what they contain.
	seen := map[string]bool{}
	for _, e := range entries {
		if d := filepath.Dir(e.name); d != "." && !seen[d] {
			t.Errorf("%s precedes its directory %s", e.name, d)
		}
		seen[e.name] = true
	}
}

// scripts/mkbusybox.sh builds the same tree as BusyboxTar.
func TestMkbusyboxScriptMatches(t *testing.T) {
	RequiresBinary(t, "tar")
	script, err := filepath.Abs("../../scripts/mkbusybox.sh")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(script); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.tar")
	cmd := exec.Command("/bin/sh", script, out)
	cmd.Dir = t.TempDir()
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkbusybox.sh: %v\n%s", err, msg)
	}
	fromScript := readTar(t, out)
	fromGo := readTar(t, BusyboxTar(t))
	key := func(a, b tarEntry) int { return strings.Compare(a.name, b.name) }
	slices.SortFunc(fromScript, key)
	slices.SortFunc(fromGo, key)
	if !slices.Equal(fromScript, fromGo) {
		for _, e := range fromGo {
			if !slices.Contains(fromScript, e) {
				t.Errorf("script tar lacks or differs on %+v", e)
			}
		}
		for _, e := range fromScript {
			if !slices.Contains(fromGo, e) {
				t.Errorf("script tar has extra %+v", e)
			}
		}
	}

	if err := exec.Command("/bin/sh", script).Run(); err == nil {
		t.Error("mkbusybox.sh without arguments succeeded")
	}
}

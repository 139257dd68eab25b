package runtime

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/testutil"
)

func TestResolveUser(t *testing.T) {
	tests := []struct {
		name     string
		spec     string
		groupAdd []string
		uid, gid uint32
		groups   []uint32
		home     string
		err      string
	}{
		{name: "empty is root", spec: "", uid: 0, gid: 0, groups: []uint32{0, 10}, home: "/root"},
		{name: "root by name", spec: "root", uid: 0, gid: 0, groups: []uint32{0, 10}, home: "/root"},
		{name: "name", spec: "alice", uid: 1000, gid: 1000, groups: []uint32{1000, 29, 100}, home: "/home/alice"},
		{name: "uid with entry", spec: "1000", uid: 1000, gid: 1000, groups: []uint32{1000, 29, 100}, home: "/home/alice"},
		{name: "uid without entry", spec: "4242", uid: 4242, gid: 0, groups: []uint32{0}, home: "/"},
		{name: "uid:gid", spec: "4242:4343", uid: 4242, gid: 4343, groups: []uint32{4343}, home: "/"},
		{name: "name:group", spec: "alice:users", uid: 1000, gid: 100, groups: []uint32{100}, home: "/home/alice"},
		{name: "name:gid", spec: "nobody:29", uid: 65534, gid: 29, groups: []uint32{29}, home: "/home"},
		{name: "uid:group", spec: "0:nogroup", uid: 0, gid: 65534, groups: []uint32{65534}, home: "/root"},
		{name: "empty home becomes /", spec: "nohome", uid: 1001, gid: 1001, groups: []uint32{1001}, home: "/"},
		{name: "group-add names and ids", spec: "nobody", groupAdd: []string{"audio", "5000", "users"}, uid: 65534, gid: 65534, groups: []uint32{65534, 100, 29, 5000}, home: "/home"},
		{name: "missing user", spec: "ghost", err: "unable to find user ghost: no matching entries in passwd file"},
		{name: "missing group", spec: "alice:ghosts", err: "unable to find group ghosts: no matching entries in group file"},
		{name: "missing group-add", spec: "alice", groupAdd: []string{"ghosts"}, err: "unable to find group ghosts"},
		{name: "uid out of range", spec: "99999999999", err: "range"},
	}
	root := fakeRootfs(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, home, err := ResolveUser(root, tc.spec, tc.groupAdd)
			if tc.err != "" {
				if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want invalid argument containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.UID != tc.uid || u.GID != tc.gid || home != tc.home {
				t.Errorf("got %d:%d home %q, want %d:%d home %q", u.UID, u.GID, home, tc.uid, tc.gid, tc.home)
			}
			if !slices.Equal(u.AdditionalGids, tc.groups) {
				t.Errorf("groups = %v, want %v", u.AdditionalGids, tc.groups)
			}
		})
	}
}

func TestResolveUserExactMessage(t *testing.T) {
	_, _, err := ResolveUser(fakeRootfs(t), "ghost", nil)
	if want := "unable to find user ghost: no matching entries in passwd file"; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want exactly %q", err, want)
	}
}

func TestResolveUserNoPasswd(t *testing.T) {
	root := t.TempDir() // a scratch image: no /etc at all
	u, home, err := ResolveUser(root, "", nil)
	if err != nil || u.UID != 0 || u.GID != 0 || home != "/" {
		t.Fatalf("root without passwd = %+v %q %v", u, home, err)
	}
	if u, _, err := ResolveUser(root, "123:456", nil); err != nil || u.UID != 123 || u.GID != 456 {
		t.Fatalf("numeric without passwd = %+v %v", u, err)
	}
	if _, _, err := ResolveUser(root, "alice", nil); err == nil || !strings.Contains(err.Error(), "unable to find user alice") {
		t.Fatalf("name without passwd: err = %v", err)
	}
}

// A rootfs whose /etc/passwd and /etc/group are symlinks pointing out of it
// must not make berth read the host's files: links resolve inside rootfs.
func TestResolveUserSymlinkEscape(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "passwd"), []byte("escapee:x:4242:4242::/escaped:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "group"), []byte("escapees:x:4343:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		target func(root string) string
	}{
		{name: "absolute link", target: func(string) string { return filepath.Join(outside, "passwd") }},
		{name: "relative link climbing out", target: func(root string) string {
			rel, err := filepath.Rel(filepath.Join(root, "etc"), filepath.Join(outside, "passwd"))
			if err != nil {
				t.Fatal(err)
			}
			return rel
		}},
		{name: "link to host /etc/passwd", target: func(string) string { return "/etc/passwd" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(tc.target(root), filepath.Join(root, "etc", "passwd")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(strings.Replace(tc.target(root), "passwd", "group", 1), filepath.Join(root, "etc", "group")); err != nil {
				t.Fatal(err)
			}
			for _, spec := range []string{"escapee", "root:escapees", "daemon"} {
				if u, _, err := ResolveUser(root, spec, nil); err == nil {
					t.Errorf("user %q resolved to %+v through a link out of the rootfs", spec, u)
				}
			}
		})
	}
}

// A link that stays inside the rootfs is followed, relative to it.
func TestResolveUserSymlinkInside(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"etc", "data"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "data", "passwd"), []byte("inner:x:7:7::/inner:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/data/passwd", filepath.Join(root, "etc", "passwd")); err != nil {
		t.Fatal(err)
	}
	u, home, err := ResolveUser(root, "inner", nil)
	if err != nil || u.UID != 7 || home != "/inner" {
		t.Fatalf("got %+v %q %v", u, home, err)
	}
}

// A FIFO planted at /etc/passwd must not block generation.
func TestResolveUserFIFO(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(root, "etc", "passwd"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ResolveUser(root, "1:1", nil); err != nil {
		t.Fatal(err)
	}
}

// Only a regular file is read: a device node planted at /etc/passwd is not
// even opened for reading, and counts as absent.
func TestResolveUserDeviceIsAbsent(t *testing.T) {
	testutil.RequiresRoot(t) // mknod
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	// /dev/zero: read, it would feed the parser forever.
	if err := unix.Mknod(filepath.Join(root, "etc", "passwd"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 5))); err != nil {
		t.Fatal(err)
	}
	if u, _, err := ResolveUser(root, "1:1", nil); err != nil || u.UID != 1 {
		t.Fatalf("numeric user with a device as passwd: %+v %v", u, err)
	}
	if _, _, err := ResolveUser(root, "root", nil); err == nil || !strings.Contains(err.Error(), "no matching entries in passwd file") {
		t.Fatalf("named user with a device as passwd: err = %v", err)
	}
}

// A passwd file larger than maxUserDB is refused with a clear error rather
// than read (a container could make it gigabytes long).
func TestResolveUserTooLarge(t *testing.T) {
	root := fakeRootfs(t)
	f, err := os.OpenFile(filepath.Join(root, "etc", "passwd"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(maxUserDB + 1); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	_, _, err = ResolveUser(root, "alice", nil)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "/etc/passwd is larger than") {
		t.Fatalf("err = %v, want an invalid argument naming /etc/passwd", err)
	}
}

// ResolveUserAt reads below the descriptor it is given, not a path.
func TestResolveUserAt(t *testing.T) {
	root := fakeRootfs(t)
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	// The path is gone; the descriptor still names the tree.
	moved := root + ".moved"
	if err := os.Rename(root, moved); err != nil {
		t.Fatal(err)
	}
	defer os.Rename(moved, root)
	u, home, err := ResolveUserAt(fd, "alice", []string{"audio"})
	if err != nil || u.UID != 1000 || home != "/home/alice" || !slices.Contains(u.AdditionalGids, 29) {
		t.Fatalf("got %+v %q %v", u, home, err)
	}
}

// Files of procfs and sysfs are never taken for a user database.
func TestKernelFile(t *testing.T) {
	for _, tc := range []struct {
		path string
		want bool
	}{{"/proc/self/stat", true}, {"/sys/kernel/uevent_seqnum", true}, {filepath.Join(t.TempDir()), false}} {
		fd, err := unix.Open(tc.path, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := kernelFile(fd); got != tc.want {
			t.Errorf("kernelFile(%s) = %v, want %v", tc.path, got, tc.want)
		}
		unix.Close(fd)
	}
}

//go:build linux

package fsutil

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// mkDeep nests n directories "d" below dir, one descriptor at a time.
func mkDeep(t *testing.T, dir string, n int) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := unix.Mkdirat(fd, "d", 0o755); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 0 {
			unix.Symlinkat("/", fd, "l")
			if f, err := unix.Openat(fd, "f", unix.O_CREAT|unix.O_WRONLY, 0o644); err == nil {
				unix.Close(f)
			}
		}
		nfd, err := unix.Openat(fd, "d", unix.O_RDONLY|unix.O_DIRECTORY, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd = nfd
	}
	unix.Close(fd)
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// A tree far deeper than the descriptor limit is removed with a bounded
// number of descriptors; os.RemoveAll runs out of them.
func TestRemoveAllDeep(t *testing.T) {
	top := filepath.Join(t.TempDir(), "top")
	os.Mkdir(top, 0o755)
	mkDeep(t, top, 30000)
	var lim unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
	small := lim
	small.Cur = uint64(openFDs(t) + maxOpenDirs + 16)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &small); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := RemoveAll(top)
	unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	t.Logf("removed 30000 levels in %v", time.Since(start))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(top); !os.IsNotExist(err) {
		t.Fatalf("%s is still there: %v", top, err)
	}
}

// Symlinks are removed, never followed; a missing path is fine; a file
// is removed too.
func TestRemoveAllLinks(t *testing.T) {
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "keep"), []byte("x"), 0o644)
	top := filepath.Join(t.TempDir(), "top")
	os.MkdirAll(filepath.Join(top, "a", "b"), 0o755)
	os.Symlink(outside, filepath.Join(top, "a", "out"))
	os.Symlink(outside, filepath.Join(top, "a", "b", "out2"))
	if err := RemoveAll(top); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(outside, "keep")); err != nil {
		t.Fatalf("followed a symlink: %v", err)
	}
	if err := RemoveAll(top); err != nil {
		t.Fatalf("missing path: %v", err)
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	if err := RemoveAll(f); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(f); !os.IsNotExist(err) {
		t.Fatalf("file still there: %v", err)
	}
}

// A mount point inside the tree is neither entered nor detached; the
// rest is removed and the mount point reported.
func TestRemoveAllKeepsMounts(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to mount")
	}
	top := filepath.Join(t.TempDir(), "top")
	mnt := filepath.Join(top, "x", "mnt")
	os.MkdirAll(mnt, 0o755)
	os.WriteFile(filepath.Join(top, "x", "f"), nil, 0o644)
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	os.WriteFile(filepath.Join(mnt, "inside"), nil, 0o644)
	err := RemoveAll(top)
	if err == nil || !strings.Contains(err.Error(), "mount point") {
		t.Fatalf("want a mount point error, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "inside")); err != nil {
		t.Fatalf("entered the mount: %v", err)
	}
	if _, err := os.Stat(filepath.Join(top, "x", "f")); !os.IsNotExist(err) {
		t.Fatalf("the rest was not removed: %v", err)
	}
}

func TestOwnerDead(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	tests := []struct {
		name, prefix string
		want         bool
	}{
		{"rm-" + self + "-abc-1", "rm-", false},
		{"rm-1073741824-abc-1", "rm-", true},
		{"tmp-1073741824-1", "rm-", false},
		{"rm-abc", "rm-", false},
		{"rm-1073741824", "rm-", false},
		{"1073741824-abc", "", true},
	}
	for _, tc := range tests {
		if got := OwnerDead(tc.name, tc.prefix); got != tc.want {
			t.Errorf("OwnerDead(%q, %q) = %v, want %v", tc.name, tc.prefix, got, tc.want)
		}
	}
}

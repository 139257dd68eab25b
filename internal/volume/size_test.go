package volume

import (
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// hostTree makes a directory standing for the host: one sparse file so
// large that counting it by mistake cannot go unnoticed.
func hostTree(t *testing.T) string {
	t.Helper()
	host := t.TempDir()
	f, err := os.Create(filepath.Join(host, "big"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(1 << 40); err != nil { // 1 TiB, no disk used
		t.Fatal(err)
	}
	return host
}

func write(t *testing.T, p string, size int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDirSize(t *testing.T) {
	host := hostTree(t)
	vol := t.TempDir()
	write(t, filepath.Join(vol, "a"), 10)
	write(t, filepath.Join(vol, "d", "b"), 20)
	write(t, filepath.Join(vol, "d", "e", "c"), 30)
	for name, target := range map[string]string{"abs": host, "rel": "../../../../../../../../" + host, "file": filepath.Join(host, "big")} {
		if err := os.Symlink(target, filepath.Join(vol, "d", name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mkfifo(filepath.Join(vol, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := DirSize(vol); got != 60 {
		t.Fatalf("DirSize = %d, want 60 (links are not followed)", got)
	}
	if got := DirSize(filepath.Join(vol, "missing")); got != 0 {
		t.Fatalf("DirSize of a missing dir = %d", got)
	}
	// The walked directory itself must not be a link either.
	if got := DirSize(filepath.Join(vol, "d", "abs")); got != 0 {
		t.Fatalf("DirSize through a link = %d, want 0", got)
	}
}

// A directory that the container exchanges with a symlink to a host
// directory while the walk runs is never walked on the host.
func TestDirSizeRace(t *testing.T) {
	host := hostTree(t)
	vol := t.TempDir()
	write(t, filepath.Join(vol, "dir", "sub", "f"), 1)
	if err := os.Symlink(host, filepath.Join(vol, "link")); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			unix.Renameat2(unix.AT_FDCWD, filepath.Join(vol, "dir"), unix.AT_FDCWD, filepath.Join(vol, "link"), unix.RENAME_EXCHANGE)
		}
	}()
	defer func() { stop.Store(true); wg.Wait() }()
	deadline := time.Now().Add(3 * time.Second)
	for i := 0; i < 20000 && time.Now().Before(deadline); i++ {
		// The container's own file may be counted twice (seen under both
		// names as they swap), never the host's.
		if got := DirSize(vol); got >= 1<<40 {
			t.Fatalf("walk %d counted %d bytes: it followed the swapped link to the host", i, got)
		}
	}
}

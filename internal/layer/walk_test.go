package layer

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// nest makes n nested directories "d" below dir, each with a file "f".
func nest(t *testing.T, dir string, n int) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if f, err := unix.Openat(fd, "f", unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644); err == nil {
			unix.Write(f, []byte("x"))
			unix.Close(f)
		}
		if err := unix.Mkdirat(fd, "d", 0o755); err != nil {
			t.Fatal(err)
		}
		nfd, err := unix.Openat(fd, "d", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd = nfd
	}
	unix.Close(fd)
}

// lowFDLimit lets the test's process open only a few more descriptors
// than it has, for the rest of the test.
func lowFDLimit(t *testing.T, extra uint64) {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = uint64(len(ents)) + extra
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &lim) })
}

// A tree deeper than the walks' descriptor window is archived whole (the
// shallower directories are reopened through ".."), with few descriptors.
func TestWalkDeepTreeBoundedFDs(t *testing.T) {
	root := t.TempDir()
	const depth = 5 * maxWalkFDs
	nest(t, root, depth)
	lowFDLimit(t, maxWalkFDs+16)
	var buf bytes.Buffer
	if err := WriteTar(context.Background(), &buf, root); err != nil {
		t.Fatal(err)
	}
	files := 0
	for _, e := range readTar(t, buf.Bytes()) {
		if strings.HasSuffix(e.Name, "/f") || e.Name == "f" {
			files++
		}
	}
	if files != depth {
		t.Fatalf("archived %d files, want %d", files, depth)
	}
	changes, err := Changes(context.Background(), root, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 2*depth {
		t.Fatalf("diff lists %d changes, want %d", len(changes), 2*depth)
	}
}

// A tree whose paths exceed PATH_MAX is refused, quickly and with a clear
// error, by the archive and diff walks alike.
func TestWalkTooDeepRefused(t *testing.T) {
	root := t.TempDir()
	nest(t, root, 3000) // "d/" * 3000: 6000 bytes
	lowFDLimit(t, maxWalkFDs+16)
	start := time.Now()
	err := WriteTar(context.Background(), io.Discard, root)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "directories deep") {
		t.Fatalf("WriteTar: want a too-deep error, got %v", err)
	}
	_, err = Changes(context.Background(), root, nil)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "directories deep") {
		t.Fatalf("Changes: want a too-deep error, got %v", err)
	}
	err = Diff(context.Background(), io.Discard, root, nil)
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("Diff: want a too-deep error, got %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("the refusals took %v", d)
	}
}

// A directory moved away while a deep walk is below it is an error, never
// a walk of whatever its old parent's place holds now.
func TestWalkReopenChecksParent(t *testing.T) {
	root := t.TempDir()
	var s dirStack
	defer s.closeAll()
	os.MkdirAll(filepath.Join(root, "a", "b"), 0o755)
	os.Mkdir(filepath.Join(root, "elsewhere"), 0o755)
	for _, p := range []string{root, filepath.Join(root, "a"), filepath.Join(root, "a", "b")} {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.push(fd); err != nil {
			t.Fatal(err)
		}
	}
	// Pretend the window closed "a", then move "b" under another parent.
	unix.Close(s.levels[1].fd)
	s.levels[1].fd = -1
	s.first = 2
	if err := os.Rename(filepath.Join(root, "a", "b"), filepath.Join(root, "elsewhere", "b")); err != nil {
		t.Fatal(err)
	}
	if err := s.pop(); !errdefs.IsConflict(err) {
		t.Fatalf("want a conflict for a moved directory, got %v", err)
	}
}

// The archive walk never opens a name that is not known to be a regular
// file: a container exchanging a regular file with a device node or a
// fifo must not get the host to open it. A fifo shows it: the opening of
// its write end, blocked until a reader comes, returns when one does.
func TestWalkNeverOpensSwappedFifo(t *testing.T) {
	root := t.TempDir()
	for _, n := range []string{"a", "c", "e"} {
		os.WriteFile(filepath.Join(root, n), []byte("data"), 0o644)
	}
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo, err := unix.Open(filepath.Join(root, "fifo"), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fifo)
	var opened atomic.Bool
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		w, err := unix.Open(procFDPath(fifo), unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			opened.Store(true)
			unix.Close(w)
		}
	}()
	stop := make(chan struct{})
	swapDone := make(chan struct{})
	go func() {
		defer close(swapDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, n := range []string{"a", "c", "e"} {
				unix.Renameat2(unix.AT_FDCWD, filepath.Join(root, n), unix.AT_FDCWD, filepath.Join(root, "fifo"), unix.RENAME_EXCHANGE)
			}
		}
	}()
	deadline := time.Now().Add(3 * time.Second)
	runs := 0
	for ; time.Now().Before(deadline) && !opened.Load(); runs++ {
		if err := WriteTar(context.Background(), io.Discard, root); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	<-swapDone
	wasOpened := opened.Load()
	// Release the writer: open the read end ourselves.
	if r, err := unix.Open(procFDPath(fifo), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
		<-writerDone
		unix.Close(r)
	}
	if wasOpened {
		t.Fatalf("the walk opened the fifo swapped in for a regular file (after %d runs)", runs)
	}
	t.Logf("%d walks under the swap, the fifo was never opened", runs)
}

// cp (KeepDirs) refuses a file where a directory is, as docker does; a
// layer replaces the directory, but never removes across a mount point.
func TestApplyFileOverDirectory(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "x", "sub"), 0o755)
	os.WriteFile(filepath.Join(root, "x", "sub", "f"), []byte("f"), 0o644)
	fd := openPath(t, root)
	defer unix.Close(fd)
	_, err := ApplyAt(ctx, fd, bytes.NewReader(buildTar(t, fileEnt("x", "file", 0o644))), ApplyOptions{LiteralWhiteouts: true, KeepDirs: true})
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "cannot overwrite directory") {
		t.Fatalf("want docker's refusal, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "x", "sub", "f")); err != nil {
		t.Fatalf("the directory's tree was touched: %v", err)
	}

	if os.Getuid() != 0 {
		t.Skip("needs root to mount")
	}
	mnt := filepath.Join(root, "x", "m")
	os.Mkdir(mnt, 0o755)
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	os.WriteFile(filepath.Join(mnt, "keep"), []byte("k"), 0o644)
	_, err = ApplyAt(ctx, fd, bytes.NewReader(buildTar(t, fileEnt("x", "file", 0o644))), ApplyOptions{})
	if err == nil || !strings.Contains(err.Error(), "mount point") {
		t.Fatalf("want a mount point error, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "keep")); err != nil {
		t.Fatalf("the removal entered the mount: %v", err)
	}
}

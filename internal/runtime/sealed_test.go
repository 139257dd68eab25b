package runtime

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/testutil"
)

// sealedFixture is a Builtin whose Self is a copy of /bin/true, with the
// copies' mounts removed at the end.
func sealedFixture(t testing.TB) (*Builtin, string) {
	t.Helper()
	testutil.RequiresRoot(t)
	dir := t.TempDir()
	self := filepath.Join(dir, "bin")
	raw, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(self, raw, 0o755); err != nil {
		t.Fatal(err)
	}
	b := &Builtin{Root: filepath.Join(dir, "state"), Self: self}
	removeViewsAtCleanup(t, b)
	return b, self
}

// removeViewsAtCleanup unmounts and removes b's read-only copies of the
// binary when t ends, before its temporary directories go.
func removeViewsAtCleanup(t testing.TB, b *Builtin) {
	t.Cleanup(func() {
		ents, _ := os.ReadDir(filepath.Join(b.Root, exeDir))
		for _, e := range ents {
			removeView(filepath.Join(b.Root, exeDir, e.Name()))
		}
	})
}

func assertNotWritable(t *testing.T, f *os.File) {
	t.Helper()
	w, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(f.Fd())), os.O_WRONLY, 0)
	if err == nil {
		w.Close()
		t.Fatalf("%s opened for writing through its fd", f.Name())
	}
	if !errors.Is(err, unix.EROFS) {
		t.Fatalf("opening %s for writing: %v, want EROFS", f.Name(), err)
	}
}

func runExe(t *testing.T, f *os.File) {
	t.Helper()
	if out, err := exec.Command(execPath(f)).CombinedOutput(); err != nil {
		t.Fatalf("running %s: %v %s", f.Name(), err, out)
	}
}

func TestSealedExe(t *testing.T) {
	b, self := sealedFixture(t)
	first, err := b.sealedExe()
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	assertNotWritable(t, first)
	runExe(t, first)

	// Reused while the binary is unchanged.
	again, err := b.sealedExe()
	if err != nil {
		t.Fatal(err)
	}
	if again.Name() != first.Name() {
		t.Fatalf("a second copy %s, want %s reused", again.Name(), first.Name())
	}
	again.Close()

	// A copy that lost its mount (a reboot with a runroot on disk, a
	// crash half-way) is made again, not used.
	if err := unix.Unmount(first.Name(), unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	redone, err := b.sealedExe()
	if err != nil {
		t.Fatal(err)
	}
	assertNotWritable(t, redone)
	redone.Close()

	// An upgraded binary gets its own copy and the old one goes, but
	// what holds it keeps it.
	later := time.Now().Add(time.Minute)
	if err := os.Chtimes(self, later, later); err != nil {
		t.Fatal(err)
	}
	upgraded, err := b.sealedExe()
	if err != nil {
		t.Fatal(err)
	}
	defer upgraded.Close()
	if upgraded.Name() == first.Name() {
		t.Fatal("the upgraded binary reuses the old copy")
	}
	if _, err := os.Lstat(first.Name()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the old copy is still there: %v", err)
	}
	assertNotWritable(t, upgraded)
	assertNotWritable(t, first)
	runExe(t, first)
	runExe(t, upgraded)
}

// Concurrent first starts make one copy, which they all use.
func TestSealedExeConcurrent(t *testing.T) {
	b, _ := sealedFixture(t)
	const n = 8
	names := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			f, err := b.sealedExe()
			if err != nil {
				t.Error(err)
				return
			}
			names <- f.Name()
			f.Close()
		})
	}
	wg.Wait()
	close(names)
	first := <-names
	for name := range names {
		if name != first {
			t.Fatalf("copies %s and %s", first, name)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(b.Root, exeDir))
	if len(ents) != 2 { // the copy and the lock
		t.Fatalf("%d entries in the copies' directory, want the copy and the lock", len(ents))
	}
}

func TestSealedMemfd(t *testing.T) {
	f, err := sealedMemfd("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("x")); err == nil {
		t.Fatal("wrote to the sealed copy")
	}
	if err := f.Truncate(0); err == nil {
		t.Fatal("truncated the sealed copy")
	}
	runExe(t, f)
}

// BenchmarkSealedExe is what a start pays once the copy exists.
func BenchmarkSealedExe(b *testing.B) {
	bt, _ := sealedFixture(b)
	for b.Loop() {
		f, err := bt.sealedExe()
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

// BenchmarkSealedMemfd is what a start would pay with a memfd copy of
// the running test binary (of the order of berth's).
func BenchmarkSealedMemfd(b *testing.B) {
	for b.Loop() {
		f, err := sealedMemfd("/proc/self/exe")
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

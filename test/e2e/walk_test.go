package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildWalkAttack builds the static attacker of the walk tests into a
// directory that tests bind-mount read-only into their containers.
func buildWalkAttack(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	buildTestHelper(t, "walkattack", dir)
	return dir
}

// measured is a berth run with its wall time and peak memory.
type measured struct {
	result
	wall   time.Duration
	maxRSS int64 // KiB
}

// runMeasured runs berth (daemonless: the command does the work itself)
// and reports its peak resident memory.
func (e *env) runMeasured(timeout time.Duration, args ...string) measured {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := e.command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	m := measured{result: result{stdout: out.String(), stderr: errb.String()}, wall: time.Since(start)}
	if ctx.Err() != nil {
		e.t.Fatalf("berth %v: no answer within %v", args, timeout)
	}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			e.t.Fatalf("berth %v: %v", args, err)
		}
		m.code = ee.ExitCode()
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.maxRSS = ru.Maxrss
	}
	return m
}

// A container nests 30000 directories. cp, export and diff refuse the
// tree quickly, with a clear error and little memory (they took 1.15 GB
// and failed with "too many open files"), and rm -f removes the container
// and its whole writable layer (os.RemoveAll ran out of descriptors and
// left it "Removal In Progress").
func TestDeepTree(t *testing.T) {
	e := newEnv(t)
	bin := buildWalkAttack(t)
	e.must("run", "-d", "--name", "deep", "-v", bin+":/h:ro", "busybox", "sh", "-c",
		"/h/walkattack deep /d0 30000 && touch /deep.ready; exec sleep 1000")
	eventually(t, 90*time.Second, "30000 nested directories", func() bool {
		return e.run("exec", "deep", "test", "-e", "/deep.ready").code == 0
	})
	id := e.inspect("deep", "{{.Id}}")
	out := filepath.Join(t.TempDir(), "export.tar")
	for _, args := range [][]string{
		{"cp", "deep:/d0", "-"},
		{"export", "-o", out, "deep"},
		{"diff", "deep"},
	} {
		m := e.runMeasured(60*time.Second, args...)
		t.Logf("berth %s: exit %d in %v, max RSS %d KiB: %s", strings.Join(args, " "), m.code, m.wall.Round(time.Millisecond), m.maxRSS, strings.TrimSpace(m.stderr))
		if m.code == 0 || !strings.Contains(m.stderr, "directories deep") {
			t.Fatalf("berth %s: want a too-deep error, got %s", strings.Join(args, " "), m.result)
		}
		if m.wall > 30*time.Second {
			t.Fatalf("berth %s took %v", strings.Join(args, " "), m.wall)
		}
		if m.maxRSS > 200<<10 {
			t.Fatalf("berth %s took %d KiB of memory", strings.Join(args, " "), m.maxRSS)
		}
	}
	m := e.runMeasured(90*time.Second, "rm", "-f", "deep")
	t.Logf("berth rm -f deep: exit %d in %v, max RSS %d KiB", m.code, m.wall.Round(time.Millisecond), m.maxRSS)
	if m.code != 0 {
		t.Fatalf("rm -f of the deep container: %s", m.result)
	}
	if ids := e.must("ps", "-aq", "--no-trunc"); strings.Contains(ids, id) {
		t.Fatalf("the container is still listed after rm -f:\n%s", e.run("ps", "-a"))
	}
	layer := filepath.Join(e.root, "containers", id)
	if _, err := os.Lstat(layer); !os.IsNotExist(err) {
		t.Fatalf("rm -f left the writable layer %s (%v)", layer, err)
	}
}

// A container exchanges a regular file with a fifo without pause; the
// walks of cp and export must never open the fifo (it stands for a device
// node, whose opening can arm a watchdog or rewind a tape, as host root
// and outside the container's device cgroup). The container sees any
// open of the fifo's read end: its blocked writer wakes up.
func TestWalkNeverOpensSwappedNode(t *testing.T) {
	e := newEnv(t)
	bin := buildWalkAttack(t)
	e.must("run", "-d", "--name", "fifoswap", "-v", bin+":/h:ro", "busybox", "/h/walkattack", "fifo", "/s")
	eventually(t, 20*time.Second, "the swap loop", func() bool {
		return e.run("exec", "fifoswap", "test", "-e", "/swap.ready").code == 0
	})
	out := filepath.Join(t.TempDir(), "export.tar")
	deadline := time.Now().Add(40 * time.Second)
	tries, copied := 0, 0
	for ; tries < 150 && time.Now().Before(deadline); tries++ {
		if r := e.run("cp", "fifoswap:/s", "-"); r.code == 0 {
			copied++
		}
		if tries%6 == 0 {
			e.run("export", "-o", out, "fifoswap")
		}
		if tries%5 == 4 && e.run("exec", "fifoswap", "test", "-e", "/opened").code == 0 {
			t.Fatalf("berth opened the node the container swapped in (after %d copies)", tries+1)
		}
	}
	if e.run("exec", "fifoswap", "test", "-e", "/opened").code == 0 {
		t.Fatalf("berth opened the node the container swapped in (after %d copies)", tries)
	}
	if e.inspect("fifoswap", "{{.State.Running}}") != "true" {
		t.Fatal("the swapper stopped: the race was not run")
	}
	if copied == 0 {
		t.Fatal("no copy succeeded: the walk was not run")
	}
	t.Logf("%d copies under the swap (%d succeeded); the node was never opened", tries, copied)
}

// cp refuses to put a file where a directory is, as docker does, instead
// of removing the directory's tree: that tree may hold the container's
// mount points, which the removal reached through /proc/<pid>/root and
// emptied from the host side.
func TestCpFileOverDirectory(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "cpdir", "--tmpfs", "/x/dir/m", "busybox", "sh", "-c",
		"echo keep > /x/dir/m/keep && { test -e /x/dir/own || echo own > /x/dir/own; } && touch /ready; exec sleep 1000")
	eventually(t, 10*time.Second, "the container's files", func() bool {
		return e.run("exec", "cpdir", "test", "-e", "/ready").code == 0
	})
	src := filepath.Join(t.TempDir(), "dir")
	if err := os.WriteFile(src, []byte("file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := e.run("cp", src, "cpdir:/x/"); r.code == 0 || !strings.Contains(r.stderr, "cannot overwrite directory") {
		t.Fatalf("cp FILE cpdir:/x/ (a directory /x/dir is there): want docker's refusal, got %s", r)
	}
	got := e.must("exec", "cpdir", "sh", "-c", "cat /x/dir/m/keep /x/dir/own; grep -c ' /x/dir/m ' /proc/mounts")
	if got != "keep\nown\n1\n" {
		t.Fatalf("the directory or its mount point changed: %q", got)
	}
	// Stopped, the same refusal (the layers alone, or with the mounts).
	e.must("stop", "-t", "0", "cpdir")
	if r := e.run("cp", src, "cpdir:/x/"); r.code == 0 || !strings.Contains(r.stderr, "cannot overwrite directory") {
		t.Fatalf("cp FILE cpdir:/x/ (stopped): %s", r)
	}
	// A file over a file, and a directory into a directory, still work.
	other := filepath.Join(t.TempDir(), "own")
	os.WriteFile(other, []byte("new\n"), 0o644)
	e.must("cp", other, "cpdir:/x/dir/")
	e.must("start", "cpdir")
	eventually(t, 10*time.Second, "the file copied over a file", func() bool {
		return e.run("exec", "cpdir", "cat", "/x/dir/own").stdout == "new\n"
	})
}

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
)

func TestArchiveSaveLoad(t *testing.T) {
	e := newEnv(t)
	id := strings.TrimSpace(e.must("images", "--no-trunc", "-q", "busybox"))
	if !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("busybox ID %q", id)
	}

	// save -o, rmi, load -i: the same image runs again.
	outDir := filepath.Join(e.dir, "out")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(outDir, "busybox.tar")
	if out := e.must("save", "-o", archive, "busybox"); out != "" {
		t.Fatalf("save -o printed %q", out)
	}
	if ents, _ := os.ReadDir(outDir); len(ents) != 1 {
		t.Fatalf("save -o left %d files in its directory, want only the archive", len(ents))
	}
	e.must("rmi", "busybox")
	if out := e.must("images", "-q"); out != "" {
		t.Fatalf("images after rmi: %q", out)
	}
	if out := e.must("load", "-i", archive); out != "Loaded image: busybox:latest\n" {
		t.Fatalf("load -i printed %q", out)
	}
	if out := e.must("run", "--rm", "busybox", "echo", "ok"); out != "ok\n" {
		t.Fatalf("run after load: %q", out)
	}
	if got := strings.TrimSpace(e.must("images", "--no-trunc", "-q")); got != id {
		t.Fatalf("ID after load %q, want %q", got, id)
	}

	// save busybox | load, through a real pipe between the two processes.
	e.must("rmi", "busybox")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	save, load := e.command(ctx, "save", "busybox"), e.command(ctx, "load")
	// The image is gone: save fails, and load, reading an empty stream, too.
	pipe, err := save.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	load.Stdin = pipe
	if err := save.Start(); err != nil {
		t.Fatal(err)
	}
	out, err := load.CombinedOutput()
	if save.Wait() == nil || err == nil {
		t.Fatalf("save | load of a removed image succeeded: %s", out)
	}

	e.must("load", "-i", archive)
	save, load = e.command(ctx, "save", "busybox"), e.command(ctx, "--root", filepath.Join(e.dir, "root2"), "--runroot", filepath.Join(e.dir, "run2"), "load")
	if pipe, err = save.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	load.Stdin = pipe
	if err := save.Start(); err != nil {
		t.Fatal(err)
	}
	out, err = load.CombinedOutput()
	if werr := save.Wait(); werr != nil || err != nil {
		t.Fatalf("save | load: %v %v: %s", werr, err, out)
	}
	if string(out) != "Loaded image: busybox:latest\n" {
		t.Fatalf("load from a pipe printed %q", out)
	}
	e2 := &env{t: t, dir: e.dir, root: filepath.Join(e.dir, "root2"), runroot: filepath.Join(e.dir, "run2")}
	t.Cleanup(e2.removeAll) // its directories go with e's
	if got := strings.TrimSpace(e2.must("images", "--no-trunc", "-q")); got != id {
		t.Fatalf("ID in the second root %q, want %q", got, id)
	}
	if out := e2.must("run", "--rm", "busybox", "echo", "ok"); out != "ok\n" {
		t.Fatalf("run in the second root: %q", out)
	}

	// A tag that points elsewhere moves, as docker reports; an ID loads untagged.
	e.must("tag", "busybox", "copy:1")
	byID := filepath.Join(outDir, "by-id.tar")
	e.must("save", "-o", byID, id)
	e.must("rmi", "busybox")
	e.must("import", "-m", "another", testutil.BusyboxTar(t), "busybox:latest") // a different image
	other := strings.TrimSpace(e.must("images", "--no-trunc", "-q", "busybox"))
	out2 := e.must("load", "-i", archive)
	want := "The image busybox:latest already exists, renaming the old one with ID " + other + " to empty string\nLoaded image: busybox:latest\n"
	if out2 != want {
		t.Fatalf("load over an existing tag printed %q, want %q", out2, want)
	}
	if out := e.must("load", "-i", byID); out != "Loaded image ID: "+id+"\n" {
		t.Fatalf("load of an untagged archive printed %q", out)
	}
}

func TestArchiveLoadRefusesGarbage(t *testing.T) {
	e := newEnv(t)
	r := e.runIn([]byte(strings.Repeat("not a tar ", 100)), "load")
	if r.code != 1 || !strings.Contains(r.stderr, "invalid archive") {
		t.Fatalf("load of garbage: %s", r)
	}
	if r := e.run("save", "-o", filepath.Join(e.dir, "x.tar"), "nosuch"); r.code != 1 || !strings.Contains(r.stderr, "No such image") {
		t.Fatalf("save of a missing image: %s", r)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "x.tar")); err == nil {
		t.Fatal("a failed save -o left its file")
	}
}

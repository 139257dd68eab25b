package e2e

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/digest"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
)

// TestRmiTagOfRunningContainer is docker's rmi of an image's only tag
// while a container runs it: refused without -f (docker's conflict, exit
// 1), untagged with -f (the image becomes <none>, the container runs on).
func TestRmiTagOfRunningContainer(t *testing.T) {
	e := newEnv(t)
	id := strings.TrimSpace(e.must("images", "-q", "busybox"))
	e.must("run", "-d", "--name", "runner", "busybox", "sleep", "300")
	cid := strings.TrimSpace(e.must("inspect", "-f", "{{.Id}}", "runner"))[:12]
	r := e.run("rmi", "busybox")
	want := fmt.Sprintf("conflict: unable to remove repository reference \"busybox\" (must force) - container %s is using its referenced image %s", cid, id)
	// docker exits 1; berth maps a conflict to its exit code in one place.
	conflict := errdefs.ExitCode(errdefs.Conflict("x"))
	if r.code != conflict || !strings.Contains(r.stderr, want) {
		t.Fatalf("rmi busybox: %s\nwant exit %d and %q", r, conflict, want)
	}
	if out := e.must("rmi", "-f", "busybox"); out != "Untagged: busybox:latest\n" {
		t.Fatalf("rmi -f busybox printed %q", out)
	}
	if got := strings.TrimSpace(e.must("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")); got != "<none>:<none> "+id {
		t.Fatalf("images after rmi -f: %q", got)
	}
	if got := e.inspect("runner", "{{.State.Running}}"); got != "true" {
		t.Fatalf("the container stopped: running=%s", got)
	}
	if out := e.must("exec", "runner", "echo", "ok"); out != "ok\n" {
		t.Fatalf("exec after rmi -f: %q", out)
	}
	// By ID it cannot be forced while the container runs.
	r = e.run("rmi", "-f", id)
	if r.code != conflict || !strings.Contains(r.stderr, "(cannot be forced) - image is being used by running container "+cid) {
		t.Fatalf("rmi -f ID: %s", r)
	}
}

// TestImageGCConcurrent runs loads, commits, rmis and image prunes from
// several processes at once for a while: afterwards every listed image
// saves whole and runs, and no blob or snapshot is left that no image
// references.
func TestImageGCConcurrent(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	archive := filepath.Join(dir, "busybox.tar")
	e.must("save", "-o", archive, "busybox")
	e.must("tag", "busybox", "base:1")
	e.must("create", "--name", "keeper", "base:1", "true") // keeps base:1's layers in use
	// Second image: busybox plus a layer, so that load and commit stack
	// layers on shared ones.
	e.must("run", "--name", "src", "busybox", "sh", "-c", "echo layer > /added")
	e.must("commit", "src", "derived:1")
	derived := filepath.Join(dir, "derived.tar")
	e.must("save", "-o", derived, "derived:1")
	e.must("rm", "src")

	d := 30 * time.Second
	if testing.Short() {
		d = 8 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	worker := func(name string, step func(i int) ([]string, result)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok := 0
			defer func() { t.Logf("%s: %d successful runs", name, ok) }()
			for i := 0; ctx.Err() == nil; i++ {
				args, r := step(i)
				if r.code == 0 {
					ok++
				}
				// A conflict or a vanished image is a fair outcome of a
				// race; a crash or a corrupt store is not.
				if r.code != 0 && !strings.Contains(r.stderr, "No such image") && !strings.Contains(r.stderr, "conflict") && !strings.Contains(r.stderr, "No such container") {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%s %v: %s", name, args, r))
					mu.Unlock()
				}
			}
		}()
	}
	run := func(args ...string) ([]string, result) { return args, e.run(args...) }
	worker("load", func(i int) ([]string, result) {
		if i%2 == 0 {
			return run("load", "-i", archive)
		}
		return run("load", "-i", derived)
	})
	worker("rmi", func(i int) ([]string, result) {
		return run("rmi", []string{"busybox", "derived:1", fmt.Sprintf("c%d:1", i%3)}[i%3])
	})
	worker("prune", func(int) ([]string, result) { return run("image", "prune", "-a", "-f") })
	worker("commit", func(i int) ([]string, result) {
		name := fmt.Sprintf("cc%d", i)
		if args, r := run("create", "--name", name, "base:1", "true"); r.code != 0 {
			return args, r
		}
		defer e.run("rm", name)
		return run("commit", name, fmt.Sprintf("c%d:1", i%3))
	})
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}

	// Every listed image saves whole and runs; what the saves hold and
	// the images' layer chains are all that the stores may hold.
	blobs, chains := map[string]bool{}, map[string]bool{}
	for _, id := range strings.Fields(e.must("images", "-aq", "--no-trunc")) {
		out := filepath.Join(dir, "check.tar")
		if r := e.run("save", "-o", out, id); r.code != 0 {
			t.Errorf("save %s: %s", id, r)
			continue
		}
		for _, name := range tarNames(t, out) {
			if hex, ok := strings.CutPrefix(name, "blobs/sha256/"); ok && hex != "" {
				blobs[hex] = true
			}
		}
		var diffIDs []digest.Digest
		for _, f := range strings.Fields(e.must("image", "inspect", "-f", "{{range .RootFS.Layers}}{{.}} {{end}}", id)) {
			diffIDs = append(diffIDs, digest.Digest(f))
		}
		for _, c := range image.ChainIDs(diffIDs) {
			chains[c.Encoded()] = true
		}
		if r := e.run("run", "--rm", id, "true"); r.code != 0 {
			t.Errorf("run %s: %s", id, r)
		}
	}
	snaps, _ := os.ReadDir(filepath.Join(e.root, "snapshots"))
	for _, s := range snaps {
		if s.Name() != "l" && !chains[s.Name()] {
			t.Errorf("left in snapshots: %s", s.Name())
		}
	}
	stored, _ := os.ReadDir(filepath.Join(e.root, "content", "blobs", "sha256"))
	for _, b := range stored {
		if !blobs[b.Name()] {
			t.Errorf("blob %s is referenced by no image", b.Name())
		}
	}
	for _, sub := range []string{"content/ingest", "content/trash"} {
		if ents, _ := os.ReadDir(filepath.Join(e.root, sub)); len(ents) != 0 {
			t.Errorf("left in %s: %d entries", sub, len(ents))
		}
	}
}

func tarNames(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var names []string
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
	}
}

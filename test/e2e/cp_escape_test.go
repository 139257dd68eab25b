package e2e

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Regression tests for issue 7, findings 5 and 6: `cp` must never read or
// write the host through a symlink in the container, nor through a
// directory that the container swaps for a symlink while the copy runs.

// hostCanary makes a host directory holding one file whose name is unique
// to the test; no archive or container may ever show that name.
func hostCanary(t *testing.T) (dir, secret string) {
	t.Helper()
	dir = t.TempDir()
	secret = fmt.Sprintf("HOSTSECRET-%d", time.Now().UnixNano())
	if err := os.WriteFile(filepath.Join(dir, secret), []byte("host data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, secret
}

// dotdotLink is a relative link target that climbs far above the
// container's root before naming dir.
func dotdotLink(dir string) string {
	return strings.Repeat("../", 12) + strings.TrimPrefix(dir, "/")
}

// tarHeaders parses a tar stream into its headers.
func tarHeaders(t *testing.T, stream string) []*tar.Header {
	t.Helper()
	var out []*tar.Header
	tr := tar.NewReader(strings.NewReader(stream))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("reading the archive: %v (%d entries so far)", err, len(out))
		}
		out = append(out, hdr)
	}
}

// assertNoSecret fails if any name under dir, or the text, mentions secret.
func assertNoSecret(t *testing.T, what, dir, text, secret string) {
	t.Helper()
	if strings.Contains(text, secret) {
		t.Fatalf("%s shows the host file %s:\n%s", what, secret, text)
	}
	if dir == "" {
		return
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), secret) {
			t.Fatalf("%s copied the host file %s to %s", what, secret, p)
		}
		return nil
	})
}

// assertEmptyDir fails unless dir holds nothing.
func assertEmptyDir(t *testing.T, what, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("%s wrote on the host: %s holds %v", what, dir, ents[0].Name())
	}
}

// Finding 5: a symlink in the container is archived as a link, for running
// and stopped containers, whether absolute or climbing with "..". -L
// follows it inside the container's root.
func TestCpLinkIsCopiedAsLink(t *testing.T) {
	e := newEnv(t)
	canary, secret := hostCanary(t)
	rel := dotdotLink(canary)
	name := "cplink"
	script := fmt.Sprintf("ln -s %s /evil && ln -s %s /evil2 && mkdir -p %s && echo inroot > %s/inside && touch /ready && exec sleep 1000",
		canary, rel, canary, canary)
	e.must("run", "-d", "--name", name, "busybox", "sh", "-c", script)
	eventually(t, 10*time.Second, "the container's links", func() bool {
		return e.run("exec", name, "test", "-e", "/ready").code == 0
	})
	links := []struct{ path, target string }{{"/evil", canary}, {"/evil2", rel}}
	for _, state := range []string{"running", "stopped"} {
		if state == "stopped" {
			e.must("stop", "-t", "0", name)
		}
		for _, l := range links {
			what := fmt.Sprintf("cp %s:%s - (%s)", name, l.path, state)
			r := e.run("cp", name+":"+l.path, "-")
			if r.code != 0 {
				t.Fatalf("%s: %s", what, r)
			}
			hdrs := tarHeaders(t, r.stdout)
			var names []string
			for _, h := range hdrs {
				names = append(names, h.Name)
			}
			assertNoSecret(t, what, "", strings.Join(names, "\n"), secret)
			if len(hdrs) != 1 || hdrs[0].Typeflag != tar.TypeSymlink || hdrs[0].Name != l.path[1:] || hdrs[0].Linkname != l.target {
				t.Fatalf("%s: want one symlink entry %s -> %s, got %v", what, l.path[1:], l.target, names)
			}

			dest := t.TempDir()
			what = fmt.Sprintf("cp %s:%s DIR (%s)", name, l.path, state)
			if r := e.run("cp", name+":"+l.path, dest); r.code != 0 {
				t.Fatalf("%s: %s", what, r)
			}
			assertNoSecret(t, what, dest, "", secret)
			if got, err := os.Readlink(filepath.Join(dest, l.path[1:])); err != nil || got != l.target {
				t.Fatalf("%s: want a link to %s, got %q, %v", what, l.target, got, err)
			}
		}
		// -L follows the link inside the container: its in-root target.
		what := fmt.Sprintf("cp -L %s:/evil - (%s)", name, state)
		r := e.run("cp", "-L", name+":/evil", "-")
		if r.code != 0 {
			t.Fatalf("%s: %s", what, r)
		}
		var names []string
		for _, h := range tarHeaders(t, r.stdout) {
			names = append(names, h.Name)
		}
		list := strings.Join(names, "\n")
		assertNoSecret(t, what, "", list, secret)
		if !strings.Contains(list, "evil/inside") {
			t.Fatalf("%s: want the in-root target's evil/inside, got:\n%s", what, list)
		}
	}
	// Bad input: docker's wording and exit status 1.
	r := e.run("cp", name+":/nonexistent", "-")
	if r.code != 1 || !strings.Contains(r.stderr, "Could not find the file /nonexistent in container "+name) {
		t.Fatalf("cp of a missing path: %s", r)
	}
}

// buildSwapper builds the static attacker helper into a directory that
// tests bind-mount read-only into their containers.
func buildSwapper(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	buildTestHelper(t, "cpswapper", dir)
	return dir
}

// startSwapper runs a container whose /dir is exchanged with a symlink to
// canary in a tight loop.
func startSwapper(t *testing.T, e *env, name, canary string) {
	t.Helper()
	bin := buildSwapper(t)
	script := fmt.Sprintf("mkdir -p /dir/sub && echo in > /dir/sub/f && ln -s %s /link && exec /h/cpswapper /dir /link", canary)
	e.must("run", "-d", "--name", name, "-v", bin+":/h:ro", "busybox", "sh", "-c", script)
	eventually(t, 10*time.Second, "the swapper's loop", func() bool {
		return e.run("exec", name, "test", "-e", "/swapper.ready").code == 0
	})
}

// Finding 6: `cp FILE c:/dir/` while the container swaps /dir for a
// symlink to a host directory never writes on the host, and copies out of
// the swapped directory never read the host.
func TestCpIntoRacingContainer(t *testing.T) {
	e := newEnv(t)
	canary, secret := hostCanary(t)
	startSwapper(t, e, "cprace", canary)
	src := filepath.Join(t.TempDir(), "payload")
	if err := os.WriteFile(src, []byte("payload\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	tries, ok := 0, 0
	for ; tries < 100 && time.Now().Before(deadline); tries++ {
		if e.run("cp", src, "cprace:/dir/").code == 0 {
			ok++
		}
		assertOnly(t, fmt.Sprintf("cp FILE cprace:/dir/ (attempt %d)", tries+1), canary, secret)
		if tries%4 == 0 {
			for _, from := range []string{"cprace:/dir/", "cprace:/dir/sub", "cprace:/dir/."} {
				r := e.run("cp", from, "-")
				assertNoSecret(t, "cp "+from+" -", "", r.stdout, secret)
			}
		}
	}
	t.Logf("%d copies, %d succeeded (the others met /dir as a dangling in-root link)", tries, ok)
	if e.inspect("cprace", "{{.State.Running}}") != "true" {
		t.Fatal("the swapper stopped: the race was not run")
	}
}

// assertOnly fails unless dir holds exactly the file named only.
func assertOnly(t *testing.T, what, dir, only string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != only {
			t.Fatalf("%s wrote on the host: %s holds %s", what, dir, e.Name())
		}
	}
}

// Finding 6: a trailing-slash destination that is a symlink is followed
// inside the container's root (where docker writes), never on the host.
func TestCpTrailingSlashLink(t *testing.T) {
	e := newEnv(t)
	canary, other := t.TempDir(), t.TempDir()
	rel := dotdotLink(canary)
	// /dir and /dir2 lead to the canary's path, which exists in the
	// container too; /dir3 to a file in the container, /dir4 to the host
	// canary only. Restartable: the test starts it again after stopping it.
	script := fmt.Sprintf("test -e /ready || { ln -s %s /dir && ln -s %s /dir2 && mkdir -p %s && echo keep > /file && ln -s /file /dir3 && ln -s %s /dir4 && touch /ready; }; exec sleep 1000",
		canary, rel, canary, other)
	e.must("run", "-d", "--name", "cpslash", "busybox", "sh", "-c", script)
	eventually(t, 10*time.Second, "the container's links", func() bool {
		return e.run("exec", "cpslash", "test", "-e", "/ready").code == 0
	})
	src := filepath.Join(t.TempDir(), "payload")
	os.WriteFile(src, []byte("payload\n"), 0o644)
	for _, state := range []string{"running", "stopped"} {
		if state == "stopped" {
			e.must("stop", "-t", "0", "cpslash")
		}
		for _, dst := range []string{"/dir/", "/dir2/", "/dir"} {
			if r := e.run("cp", src, "cpslash:"+dst); r.code != 0 {
				t.Fatalf("cp FILE cpslash:%s (%s): %s", dst, state, r)
			}
			assertEmptyDir(t, "cp FILE cpslash:"+dst+" ("+state+")", canary)
		}
		// A trailing slash asserts a directory: a link to a file, or to a
		// path that exists on the host only, is an error, and nothing is
		// written (the issue saw /dir3 replaced by the file).
		for _, dst := range []string{"/dir3/", "/dir4/"} {
			r := e.run("cp", src, "cpslash:"+dst)
			if r.code == 0 {
				t.Fatalf("cp FILE cpslash:%s (%s) succeeded: it replaced the link", dst, state)
			}
			if r.code != 1 || !strings.Contains(r.stderr, "must be a directory") && !strings.Contains(r.stderr, "does not exist") {
				t.Fatalf("cp FILE cpslash:%s (%s): want exit 1 and docker's message, got %s", dst, state, r)
			}
			assertEmptyDir(t, "cp FILE cpslash:"+dst+" ("+state+")", other)
		}
	}
	// The file landed in the link's in-root target, and the links are intact.
	e.must("start", "cpslash")
	if out := e.must("exec", "cpslash", "cat", canary+"/payload"); out != "payload\n" {
		t.Fatalf("in-root target: %q", out)
	}
	for l, want := range map[string]string{"/dir": canary, "/dir3": "/file"} {
		if out := e.must("exec", "cpslash", "readlink", l); strings.TrimSpace(out) != want {
			t.Fatalf("cp replaced the link %s: %q", l, out)
		}
	}
	if out := e.must("exec", "cpslash", "cat", "/file"); out != "keep\n" {
		t.Fatalf("cp wrote through /dir3/ onto /file: %q", out)
	}
	// Without the slash, a link to a file is written through, inside the
	// container, as docker does; the link stays.
	e.must("cp", src, "cpslash:/dir3")
	if out := e.must("exec", "cpslash", "sh", "-c", "cat /file; readlink /dir3"); out != "payload\n/file\n" {
		t.Fatalf("cp FILE cpslash:/dir3: %q", out)
	}
}

// export, diff and commit walk a running container's files by
// descriptors: a directory swapped for a symlink to the host meanwhile
// never brings a host file into their output.
func TestExportDiffCommitRacingSwap(t *testing.T) {
	e := newEnv(t)
	canary, secret := hostCanary(t)
	startSwapper(t, e, "exrace", canary)
	deadline := time.Now().Add(20 * time.Second)
	out := filepath.Join(t.TempDir(), "export.tar")
	tries := 0
	for ; tries < 150 && time.Now().Before(deadline); tries++ {
		if r := e.run("diff", "exrace"); r.code != 0 {
			t.Fatalf("diff: %s", r)
		} else {
			assertNoSecret(t, "diff", "", r.stdout, secret)
		}
		if tries%5 != 0 {
			continue
		}
		if r := e.run("export", "-o", out, "exrace"); r.code != 0 {
			t.Fatalf("export: %s", r)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, h := range tarHeaders(t, string(b)) {
			names = append(names, h.Name)
		}
		assertNoSecret(t, "export", "", strings.Join(names, "\n"), secret)
	}
	ref := fmt.Sprintf("exrace-commit:%d", time.Now().UnixNano())
	e.must("commit", "exrace", ref)
	e.must("rm", "-f", "exrace")
	if out := e.must("run", "--rm", ref, "find", "/", "-xdev", "-name", "HOSTSECRET*"); out != "" {
		t.Fatalf("the committed image holds host files: %q", out)
	}
	t.Logf("%d diffs and %d exports under the swap", tries, (tries+4)/5)
}

// cp sees a container's volumes and binds, running or stopped, as docker
// cp does, and a read-only bind stays read-only.
func TestCpSeesVolumes(t *testing.T) {
	e := newEnv(t)
	bind := t.TempDir()
	os.WriteFile(filepath.Join(bind, "bound"), []byte("bound\n"), 0o644)
	e.must("run", "-d", "--name", "cpvol", "-v", "cpvol-data:/data", "-v", bind+":/data/ro:ro", "busybox",
		"sh", "-c", "test -e /data/inside || echo inside > /data/inside; exec sleep 1000")
	eventually(t, 10*time.Second, "the volume's file", func() bool {
		return e.run("exec", "cpvol", "test", "-e", "/data/inside").code == 0
	})
	src := filepath.Join(t.TempDir(), "payload")
	os.WriteFile(src, []byte("payload\n"), 0o644)
	for _, state := range []string{"running", "stopped"} {
		if state == "stopped" {
			e.must("stop", "-t", "0", "cpvol")
		}
		r := e.run("cp", "cpvol:/data", "-")
		if r.code != 0 {
			t.Fatalf("cp cpvol:/data - (%s): %s", state, r)
		}
		var names []string
		for _, h := range tarHeaders(t, r.stdout) {
			names = append(names, h.Name)
		}
		list := strings.Join(names, "\n")
		if !strings.Contains(list, "data/inside") || !strings.Contains(list, "data/ro/bound") {
			t.Fatalf("cp cpvol:/data - (%s) misses the volume or the bind:\n%s", state, list)
		}
		e.must("cp", src, "cpvol:/data/payload-"+state)
		if r := e.run("cp", src, "cpvol:/data/ro/"); r.code != 1 || !strings.Contains(r.stderr, "read-only") {
			t.Fatalf("cp into a read-only bind (%s): %s", state, r)
		}
		assertNoSecret(t, "cp into a read-only bind", bind, "", "payload")
	}
	e.must("start", "cpvol")
	if out := e.must("exec", "cpvol", "cat", "/data/payload-running", "/data/payload-stopped"); out != "payload\npayload\n" {
		t.Fatalf("files copied into the volume: %q", out)
	}
}

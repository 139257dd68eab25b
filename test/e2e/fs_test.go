package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDiffCommitExportCp(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "fs1", "busybox", "sh", "-c", "mkdir -p /app/sub && echo hi > /app/sub/f && rm /bin/vi && touch /ready && sleep 1000")
	eventually(t, 10*time.Second, "the container's changes", func() bool {
		return e.run("exec", "fs1", "test", "-e", "/ready").code == 0
	})
	diff := e.must("diff", "fs1")
	for _, want := range []string{"A /app\n", "A /app/sub/f\n", "D /bin/vi\n", "C /bin\n"} {
		if !strings.Contains(diff, want) {
			t.Fatalf("diff lacks %q:\n%s", want, diff)
		}
	}
	if strings.Contains(diff, "/etc/hosts") || strings.Contains(diff, "/proc") {
		t.Fatalf("diff shows the runtime's mount points:\n%s", diff)
	}

	// cp out: a directory into an existing dir, a file to a new name, contents with /.
	host := filepath.Join(e.dir, "out")
	os.MkdirAll(host, 0o755)
	e.must("cp", "fs1:/app", host)
	if b, _ := os.ReadFile(filepath.Join(host, "app/sub/f")); string(b) != "hi\n" {
		t.Fatalf("cp dir out: %q", b)
	}
	e.must("cp", "fs1:/app/sub/f", filepath.Join(host, "renamed"))
	if b, _ := os.ReadFile(filepath.Join(host, "renamed")); string(b) != "hi\n" {
		t.Fatalf("cp file out: %q", b)
	}
	e.must("cp", "fs1:/app/.", filepath.Join(host, "contents"))
	if _, err := os.Stat(filepath.Join(host, "contents/sub/f")); err != nil {
		t.Fatalf("cp contents out: %v", err)
	}
	if r := e.run("cp", "fs1:/nonexistent", host); r.code == 0 {
		t.Fatal("cp of a missing path succeeded")
	}
	// cp in, owned by root in the container.
	os.WriteFile(filepath.Join(host, "up.txt"), []byte("up\n"), 0o640)
	os.Chown(filepath.Join(host, "up.txt"), 1234, 1234)
	e.must("cp", filepath.Join(host, "up.txt"), "fs1:/app/")
	if out := e.must("exec", "fs1", "stat", "-c", "%u:%g %a", "/app/up.txt"); strings.TrimSpace(out) != "0:0 640" {
		t.Fatalf("cp in: %q", out)
	}
	// A symlink in the container cannot redirect cp outside it.
	e.must("exec", "fs1", "ln", "-s", "/", "/escape")
	outside := filepath.Join(e.dir, "outside-target")
	os.MkdirAll(outside, 0o755)
	e.must("exec", "fs1", "ln", "-s", outside, "/escape2")
	e.run("cp", filepath.Join(host, "up.txt"), "fs1:/escape2/")
	if _, err := os.Stat(filepath.Join(outside, "up.txt")); err == nil {
		t.Fatal("cp followed a container symlink onto the host")
	}

	// commit keeps the changes and records history.
	id := strings.TrimSpace(e.must("commit", "-m", "snapshot", "-c", "ENV COMMITTED=1", "fs1", "committed:v1"))
	if !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("commit printed %q", id)
	}
	if out := e.must("run", "--rm", "committed:v1", "sh", "-c", "cat /app/sub/f; echo $COMMITTED; ls /bin/vi 2>&1 || true"); !strings.HasPrefix(out, "hi\n1\n") || !strings.Contains(out, "No such file") {
		t.Fatalf("committed image: %q", out)
	}
	if h := e.must("history", "committed:v1"); !strings.Contains(h, "snapshot") {
		t.Fatalf("history:\n%s", h)
	}

	// export is a tar of the whole filesystem.
	tarPath := filepath.Join(e.dir, "export.tar")
	e.must("export", "-o", tarPath, "fs1")
	list, err := exec.Command("tar", "tf", tarPath).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(list), "app/sub/f") || !strings.Contains(string(list), "bin/busybox") {
		t.Fatalf("export lacks files:\n%s", list)
	}
}

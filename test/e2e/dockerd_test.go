package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/testutil"
)

// TestDockerdDrivesBuiltinRuntime: Docker itself runs containers with the
// built-in runtime through its runc-compatible command line (dockerd
// --add-runtime berth=berth-runc, through containerd's runc shim): run,
// run -d, exec and stop. The dockerd is private to the test (its own data
// and exec roots and socket, no bridge or iptables) and is stopped by its
// pid afterwards.
func TestDockerdDrivesBuiltinRuntime(t *testing.T) {
	link := filepath.Join(t.TempDir(), "berth-runc")
	if err := os.Symlink(berthBin, link); err != nil {
		t.Fatal(err)
	}
	d := testutil.StartDockerd(t, "berth-dockerd-", "--add-runtime", "berth="+link)
	dk := func(stdin string, args ...string) result {
		t.Helper()
		r := d.Run([]byte(stdin), args...)
		if r.Code < 0 {
			t.Fatalf("docker %v: %s", args, r.Stderr)
		}
		return result{stdout: r.Stdout, stderr: r.Stderr, code: r.Code}
	}
	must := func(args ...string) string {
		t.Helper()
		r := dk("", args...)
		if r.code != 0 {
			t.Fatalf("docker %s: %s", strings.Join(args, " "), r)
		}
		return r.stdout
	}
	must("import", testutil.BusyboxTar(t), "busybox:latest")

	if out := must("run", "--rm", "--runtime", "berth", "--network", "none", "busybox", "echo", "ok"); out != "ok\n" {
		t.Errorf("docker run --runtime berth: %q, want ok", out)
	}
	// Seen from inside: confined by berth's runtime as by runc.
	if out := must("run", "--rm", "--runtime", "berth", "--network", "none", "busybox", "sh", "-c", "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status | tr -s '\\t ' ' '"); !strings.Contains(out, "Seccomp: 2") {
		t.Errorf("no seccomp filter in the container: %q", out)
	}
	if r := dk("", "run", "--rm", "--runtime", "berth", "--network", "none", "busybox", "sh", "-c", "exit 7"); r.code != 7 {
		t.Errorf("exit status: %s; want 7", r)
	}
	id := strings.TrimSpace(must("run", "-d", "--runtime", "berth", "--network", "none", "busybox",
		"sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"))
	if out := must("exec", id, "sh", "-c", "echo exec-ok; cat /proc/1/cmdline | tr '\\0' ' '"); !strings.HasPrefix(out, "exec-ok\nsh -c") {
		t.Errorf("docker exec: %q", out)
	}
	if r := dk("hello\n", "exec", "-i", id, "cat"); r.code != 0 || r.stdout != "hello\n" {
		t.Errorf("docker exec -i: %s", r)
	}
	must("stop", "-t", "10", id)
	if code := strings.TrimSpace(must("inspect", "-f", "{{.State.ExitCode}}", id)); code != "0" {
		t.Errorf("exit code after stop = %s, want 0 (the TERM trap)", code)
	}
	must("rm", id)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

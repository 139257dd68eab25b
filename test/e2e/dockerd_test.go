package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/testutil"
)

// TestDockerdDrivesBuiltinRuntime: Docker itself runs containers with the
// built-in runtime through its runc-compatible command line (dockerd
// --add-runtime berth=berth-runc, through containerd's runc shim): run,
// run -d, exec and stop. The dockerd is private to the test (its own data
// and exec roots and socket, no bridge or iptables) and is stopped by its
// pid afterwards.
func TestDockerdDrivesBuiltinRuntime(t *testing.T) {
	testutil.RequiresRoot(t)
	dockerd := testutil.RequiresBinary(t, "dockerd")
	docker := testutil.RequiresBinary(t, "docker")
	testutil.RequiresBinary(t, "containerd")
	dir, err := os.MkdirTemp("", "berth-dockerd-")
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "berth-runc")
	if err := os.Symlink(berthBin, link); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "docker.sock")
	logFile, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	d := exec.Command(dockerd,
		"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"-H", "unix://"+sock, "--pidfile", filepath.Join(dir, "docker.pid"),
		"--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
		"--add-runtime", "berth="+link)
	d.Stdout, d.Stderr = logFile, logFile
	d.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stopDockerd(t, d, dir)
		logFile.Close()
		if t.Failed() {
			if raw, err := os.ReadFile(logFile.Name()); err == nil {
				t.Logf("dockerd log (tail):\n%s", tail(string(raw), 4000))
			}
		}
		unmountUnder(dir)
		os.RemoveAll(dir)
	})

	dk := func(stdin string, args ...string) result {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, docker, append([]string{"-H", "unix://" + sock}, args...)...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr, cmd.Stdin = &out, &errb, strings.NewReader(stdin)
		err := cmd.Run()
		r := result{stdout: out.String(), stderr: errb.String()}
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("docker %v: %v", args, err)
		}
		return r
	}
	must := func(args ...string) string {
		t.Helper()
		r := dk("", args...)
		if r.code != 0 {
			t.Fatalf("docker %s: %s", strings.Join(args, " "), r)
		}
		return r.stdout
	}
	eventually(t, 30*time.Second, "dockerd to answer", func() bool { return dk("", "version").code == 0 })
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

// stopDockerd stops the test's dockerd by its pid (TERM, then KILL) and
// the containerd it started, which its pid file under dir names.
func stopDockerd(t *testing.T, d *exec.Cmd, dir string) {
	d.Process.Signal(unix.SIGTERM)
	done := make(chan struct{})
	go func() { d.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Log("dockerd did not stop on TERM; killing it")
		d.Process.Kill()
		<-done
	}
	// dockerd stops the containerd it manages; make sure it is gone.
	matches, _ := filepath.Glob(filepath.Join(dir, "exec", "containerd", "containerd.pid"))
	for _, pidFile := range matches {
		var pid int
		if raw, err := os.ReadFile(pidFile); err == nil {
			fmt.Sscan(string(raw), &pid)
		}
		if pid > 0 && unix.Kill(pid, 0) == nil {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// unmountUnder detaches every mount below dir, deepest first.
func unmountUnder(dir string) {
	raw, _ := os.ReadFile("/proc/self/mountinfo")
	var mounts []string
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			mounts = append(mounts, f[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		unix.Unmount(mounts[i], unix.MNT_DETACH)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

package testutil

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Dockerd is a Docker engine private to one test: its own data and exec
// roots, socket and pidfile under a directory of its own, no bridge and no
// iptables rules, stopped by its pid when the test ends. Tests compare
// berth with it; they never touch the system's docker.
type Dockerd struct {
	Dir    string // its state; the socket is Dir/docker.sock
	Sock   string
	docker string
	cmd    *exec.Cmd
	log    string
}

// DockerResult is one docker CLI call.
type DockerResult struct {
	Stdout, Stderr string
	Code           int
}

func (r DockerResult) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.Code, r.Stdout, r.Stderr)
}

// StartDockerd starts a private dockerd (skipping, or failing in CI, when
// dockerd, containerd or the docker CLI are missing) and waits until it
// answers. dirPrefix names its directory under os.TempDir(); extraArgs go
// to dockerd (e.g. --add-runtime). At cleanup the containers it still has
// are removed, it is stopped (TERM, then KILL), its containerd killed if
// it outlived it, and its mounts and directory removed.
func StartDockerd(t testing.TB, dirPrefix string, extraArgs ...string) *Dockerd {
	t.Helper()
	RequiresRoot(t)
	dockerd := RequiresBinary(t, "dockerd")
	docker := RequiresBinary(t, "docker")
	RequiresBinary(t, "containerd")
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	d := &Dockerd{Dir: dir, Sock: filepath.Join(dir, "docker.sock"), docker: docker, log: filepath.Join(dir, "dockerd.log")}
	logFile, err := os.Create(d.log)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{
		"--data-root", filepath.Join(dir, "data"), "--exec-root", filepath.Join(dir, "exec"),
		"-H", "unix://" + d.Sock, "--pidfile", filepath.Join(dir, "docker.pid"),
		"--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
	}, extraArgs...)
	d.cmd = exec.Command(dockerd, args...)
	d.cmd.Stdout, d.cmd.Stderr = logFile, logFile
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := d.cmd.Start(); err != nil {
		logFile.Close()
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	logFile.Close()
	t.Cleanup(func() { d.stop(t) })
	deadline := time.Now().Add(30 * time.Second)
	for d.Run(nil, "version").Code != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("private dockerd did not answer within 30s:\n%s", d.LogTail(4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return d
}

// Run runs the docker CLI against d with stdin (nil for none). A CLI that
// cannot be started at all is reported as exit code -1.
func (d *Dockerd) Run(stdin []byte, args ...string) DockerResult {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.docker, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+d.Sock, "DOCKER_CONFIG="+filepath.Join(d.Dir, "config"))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	err := cmd.Run()
	r := DockerResult{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	case err != nil:
		r.Code, r.Stderr = -1, err.Error()
	}
	return r
}

// LogTail is the end of dockerd's log, for failure messages.
func (d *Dockerd) LogTail(n int) string {
	raw, _ := os.ReadFile(d.log)
	if len(raw) > n {
		raw = raw[len(raw)-n:]
	}
	return string(raw)
}

func (d *Dockerd) stop(t testing.TB) {
	if ids := strings.Fields(d.Run(nil, "ps", "-aq").Stdout); len(ids) > 0 {
		d.Run(nil, append([]string{"rm", "-f", "-v"}, ids...)...)
	}
	d.cmd.Process.Signal(unix.SIGTERM)
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Log("private dockerd did not stop on TERM; killing it")
		d.cmd.Process.Kill()
		<-done
	}
	if t.Failed() {
		t.Logf("private dockerd log (tail):\n%s", d.LogTail(4000))
	}
	// dockerd stops the containerd it manages; make sure it is gone.
	if raw, err := os.ReadFile(filepath.Join(d.Dir, "exec", "containerd", "containerd.pid")); err == nil {
		var pid int
		fmt.Sscan(string(raw), &pid)
		if pid > 0 && unix.Kill(pid, 0) == nil {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
	UnmountUnder(d.Dir)
	os.RemoveAll(d.Dir)
}

// UnmountUnder detaches every mount at or below dir, deepest first.
func UnmountUnder(dir string) {
	raw, _ := os.ReadFile("/proc/self/mountinfo")
	var mounts []string
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mounts = append(mounts, f[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		unix.Unmount(mounts[i], unix.MNT_DETACH)
	}
}

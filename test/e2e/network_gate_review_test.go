package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Review tests of the attach beside the runtime (RunGated): the monitor
// dies (kill -9) while its container's init waits for the attach.

// holdAttachLock takes the root's network attach lock exclusively, so
// that a start's attach waits (as a sweep would make it); the returned
// function lets it go.
func holdAttachLock(t *testing.T, e *env) func() {
	t.Helper()
	p := filepath.Join(e.runroot, "network", "attach.lock")
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(err)
	}
	released := false
	release := func() {
		if !released {
			released = true
			f.Close()
		}
	}
	t.Cleanup(release)
	return release
}

// procChildren lists pid's children (of any of its threads: Go forks
// from whichever thread runs the goroutine).
func procChildren(pid int) []int {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, p := range files {
		raw, _ := os.ReadFile(p)
		for _, f := range strings.Fields(string(raw)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

func procState(pid int) string {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	_, after, _ := strings.Cut(string(stat), ") ")
	return after[:1]
}

// TestReviewMonitorKilledAtGate: the monitor dies while the init waits
// at the gate. The init must not run the command nor stay (it reads EOF
// and ends), and the next start and rm must work and leave nothing.
func TestReviewMonitorKilledAtGate(t *testing.T) {
	if os.Getenv("BERTH_RUNTIME") == "runc" {
		t.Skip("the gate is the built-in runtime's")
	}
	e := newEnv(t)
	release := holdAttachLock(t, e)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run := e.command(ctx, "run", "-d", "--name", "gk", "-p", "18583:80", "busybox", "sh", "-c", "touch /ran; exec sleep 600")
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	defer run.Wait()
	var mon, init int
	eventually(t, 20*time.Second, "the init waiting at the gate", func() bool {
		ids := strings.Fields(e.run("ps", "-aq", "--no-trunc").stdout)
		if len(ids) != 1 {
			return false
		}
		raw, err := os.ReadFile(filepath.Join(e.runroot, "containers", ids[0], "monitor.pid"))
		if err != nil {
			return false
		}
		fmt.Sscan(string(raw), &mon)
		for _, c := range procChildren(mon) {
			wchan, _ := os.ReadFile(fmt.Sprintf("/proc/%d/wchan", c))
			mi, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", c))
			// Pivoted (the host's root is gone from its table), reading a pipe.
			if strings.Contains(string(wchan), "pipe_read") && !strings.Contains(string(mi), e.runroot) {
				init = c
				return true
			}
		}
		return false
	})
	if err := unix.Kill(mon, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the waiting init gone with its monitor", func() bool {
		s := procState(init)
		return s == "" || s == "Z" || s == "X"
	})
	release()
	run.Wait()
	if st := e.inspect("gk", "{{.State.Status}}"); st != "created" {
		t.Errorf("status after the monitor died at the gate: %s", st)
	}
	// The command never ran.
	if r := e.run("start", "gk"); r.code != 0 {
		t.Fatalf("start after the monitor died at the gate: %s", r)
	}
	if out := e.must("exec", "gk", "sh", "-c", "ip -4 -o addr show eth0 | wc -l; grep -c \"$(hostname)\" /etc/hosts"); out != "1\n1\n" {
		t.Errorf("network after the restart: %q", out)
	}
	id := e.inspect("gk", "{{.Id}}")
	e.must("rm", "-f", "gk")
	if m, _ := filepath.Glob("/sys/fs/cgroup/*/berth/" + id); len(m) > 0 {
		t.Errorf("cgroups left: %v", m)
	}
	if m, _ := filepath.Glob("/sys/fs/cgroup/berth/" + id); len(m) > 0 {
		t.Errorf("cgroup left: %v", m)
	}
	// env cleanup checks the root's kernel state (rootclean).
}

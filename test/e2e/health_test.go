package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestHealthCheck(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "hc", "--health-cmd", "test -e /healthy", "--health-interval", "200ms",
		"--health-retries", "2", "busybox", "sh", "-c", "touch /healthy; sleep 1000")
	eventually(t, 20*time.Second, "healthy", func() bool {
		return e.inspect("hc", "{{.State.Health.Status}}") == "healthy"
	})
	if ps := e.must("ps", "--format", "{{.Status}}", "--filter", "name=hc"); !strings.Contains(ps, "(healthy)") {
		t.Fatalf("ps status %q", ps)
	}
	e.must("exec", "hc", "rm", "/healthy")
	eventually(t, 20*time.Second, "unhealthy", func() bool {
		return e.inspect("hc", "{{.State.Health.Status}}") == "unhealthy"
	})
	if n := e.inspect("hc", "{{.State.Health.FailingStreak}}"); n == "0" || n == "1" {
		t.Fatalf("failing streak %s", n)
	}
	if got := e.must("ps", "-q", "--filter", "health=unhealthy"); strings.TrimSpace(got) == "" {
		t.Fatal("health filter found nothing")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ev := e.command(ctx, "events", "--since", "1h", "--until", "0s", "--filter", "container=hc")
	out, _ := ev.Output()
	for _, want := range []string{"create", "start", "health_status: healthy", "health_status: unhealthy"} {
		if !strings.Contains(string(out), "container "+want+" ") {
			t.Fatalf("events lack %q:\n%s", want, out)
		}
	}
	// --no-healthcheck disables an image's check.
	e.must("run", "-d", "--name", "nohc", "--no-healthcheck", "busybox", "sleep", "100")
	if h := e.inspect("nohc", "{{json .State.Health}}"); h != "null" {
		t.Fatalf("health with --no-healthcheck: %s", h)
	}
}

// TestHealthCheckTeardown stops and force-removes containers while their
// health checks run, again and again: every command must finish promptly
// and leave no monitor, exec helper or checked process behind. A check
// process orphaned to the monitor, which never reaped it, used to keep
// the container's init from finishing its exit, and `rm -f` or `stop`
// hung for good.
func TestHealthCheckTeardown(t *testing.T) {
	e := newEnv(t)
	// Registered after newEnv, so it runs first: a hung monitor would
	// hang the env's own cleanup.
	t.Cleanup(func() { e.killMonitors() })
	const iterations = 30
	deadline := 15 * time.Second
	for i := range iterations {
		name := fmt.Sprintf("hct%d", i)
		if r := e.runWithin(deadline, "run", "-d", "--name", name, "--health-cmd", "sleep 0.05",
			"--health-interval", "100ms", "busybox", "sleep", "1000"); r.code != 0 {
			t.Fatalf("iteration %d: run: %s", i, r)
		}
		// Into a check: the interval is 100 ms and a check lasts 50 ms.
		eventually(t, 10*time.Second, "a health check ran", func() bool {
			return e.inspect(name, "{{len .State.Health.Log}}") != "0"
		})
		time.Sleep(time.Duration(i%7) * 15 * time.Millisecond) // vary the phase
		tree := e.monitorTrees()
		args := []string{"rm", "-f", name}
		if i%2 == 1 {
			args = []string{"stop", "-t", "0", name}
		}
		if r := e.runWithin(deadline, args...); r.code != 0 {
			t.Fatalf("iteration %d: %v: %s", i, args, r)
		}
		if i%2 == 1 {
			if r := e.runWithin(deadline, "rm", name); r.code != 0 {
				t.Fatalf("iteration %d: rm after stop: %s", i, r)
			}
		}
		eventually(t, 10*time.Second, "no monitor, helper or check process left", func() bool {
			for _, p := range tree {
				if p.alive() {
					return false
				}
			}
			return true
		})
	}
}

// procID names a process for good: its pid and start time.
type procID struct {
	pid   int
	start string
}

func (p procID) alive() bool {
	start, err := procStart(p.pid)
	return err == nil && start == p.start
}

// procStart is field 22 of /proc/<pid>/stat, the start time.
func procStart(pid int) (string, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 {
		return "", fmt.Errorf("short stat of %d", pid)
	}
	return f[19], nil
}

// monitorTrees lists the monitors of e's root and all their descendants.
func (e *env) monitorTrees() []procID {
	children := map[int][]int{}
	var monitors []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if raw, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline")); err == nil {
			args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
			if len(args) > 1 && args[1] == "_monitor" && slices.Contains(args, e.root) {
				monitors = append(monitors, pid)
			}
		}
		raw, err := os.ReadFile(filepath.Join("/proc", d.Name(), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "PPid:"); ok {
				ppid, _ := strconv.Atoi(strings.TrimSpace(v))
				children[ppid] = append(children[ppid], pid)
			}
		}
	}
	var out []procID
	for queue := monitors; len(queue) > 0; queue = queue[1:] {
		if start, err := procStart(queue[0]); err == nil {
			out = append(out, procID{queue[0], start})
		}
		queue = append(queue, children[queue[0]]...)
	}
	return out
}

// killMonitors kills what is left of e's monitors and their descendants.
func (e *env) killMonitors() {
	for _, p := range e.monitorTrees() {
		e.t.Logf("killing leftover process %d", p.pid)
		syscall.Kill(p.pid, syscall.SIGKILL)
	}
}

// TestHealthCheckTimeoutKillsCheck: a check past its timeout is killed in
// the container, reported as timed out, and the next checks still run.
func TestHealthCheckTimeoutKillsCheck(t *testing.T) {
	e := newEnv(t)
	t.Cleanup(func() { e.killMonitors() })
	e.must("run", "-d", "--name", "hcto", "--health-cmd", "sleep 1000", "--health-timeout", "300ms",
		"--health-interval", "100ms", "--health-retries", "1", "busybox", "sleep", "999")
	eventually(t, 20*time.Second, "two timed-out checks", func() bool {
		n, _ := strconv.Atoi(e.inspect("hcto", "{{len .State.Health.Log}}"))
		return n >= 2
	})
	if out := e.inspect("hcto", "{{(index .State.Health.Log 0).Output}}"); !strings.Contains(out, "exceeded timeout") {
		t.Fatalf("first check: %q", out)
	}
	if st := e.inspect("hcto", "{{.State.Health.Status}}"); st != "unhealthy" {
		t.Fatalf("status %q", st)
	}
	// At most the check running now is left.
	if ps := e.must("exec", "hcto", "ps", "-o", "args"); strings.Count(ps, "sleep 1000") > 1 {
		t.Fatalf("timed-out checks still run:\n%s", ps)
	}
	if r := e.runWithin(15*time.Second, "rm", "-f", "hcto"); r.code != 0 {
		t.Fatalf("rm -f: %s", r)
	}
}

// TestHealthCheckOrphanReaped: a check whose parent on the host (the exec
// helper, or runc) dies is adopted by the monitor, a child subreaper,
// which must reap it: until then the container's init cannot finish
// exiting, and `rm -f` used to hang for good.
func TestHealthCheckOrphanReaped(t *testing.T) {
	e := newEnv(t)
	t.Cleanup(func() { e.killMonitors() })
	for i, teardown := range [][]string{{"rm", "-f"}, {"stop", "-t", "0"}} {
		name := fmt.Sprintf("hcorph%d", i)
		e.must("run", "-d", "--name", name, "--health-cmd", "sleep 1000", "--health-interval", "100ms", "busybox", "sleep", "999")
		var parent int
		eventually(t, 20*time.Second, "a running check's parent", func() bool {
			parent = e.checkParent()
			return parent > 0
		})
		tree := e.monitorTrees()
		syscall.Kill(parent, syscall.SIGKILL)
		if r := e.runWithin(15*time.Second, append(teardown, name)...); r.code != 0 {
			t.Fatalf("%v: %s", teardown, r)
		}
		if teardown[0] == "stop" && e.inspect(name, "{{.State.Running}}") != "false" {
			t.Fatal("still running after stop")
		}
		eventually(t, 10*time.Second, "no monitor or check process left", func() bool {
			for _, p := range tree {
				if p.alive() {
					return false
				}
			}
			return true
		})
	}
}

// checkParent is the pid of a process of the host's pid namespace that is
// a monitor's child and the parent of a process in the container: the
// exec helper (or runc) of a running health check; 0 if there is none.
func (e *env) checkParent() int {
	tree := e.monitorTrees()
	in := map[int]bool{}
	for _, p := range tree {
		in[p.pid] = true
	}
	for _, p := range tree {
		ppid, nested := procParent(p.pid)
		// A check: nested, not its namespace's init, its parent in the
		// tree and in our namespace.
		if nested && in[ppid] {
			if _, pnested := procParent(ppid); !pnested && !e.isMonitor(ppid) {
				return ppid
			}
		}
	}
	return 0
}

// procParent reads pid's parent and whether pid is in a nested pid
// namespace other than as its init.
func procParent(pid int) (ppid int, nested bool) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "PPid:"); ok {
			ppid, _ = strconv.Atoi(strings.TrimSpace(v))
		}
		if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(v)
			nested = len(f) > 1 && f[len(f)-1] != "1"
		}
	}
	return ppid, nested
}

func (e *env) isMonitor(pid int) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	return err == nil && len(args) > 1 && args[1] == "_monitor"
}

// TestHealthCheckOutputCaptured: every probe's output is in its log entry.
// The pipe used to be closed as soon as the check exited, which lost the
// output whenever the reader had not caught up yet.
func TestHealthCheckOutputCaptured(t *testing.T) {
	e := newEnv(t)
	e.must("run", "-d", "--name", "hcout", "--health-cmd", "echo probe-output", "--health-interval", "100ms",
		"busybox", "sleep", "1000")
	eventually(t, 30*time.Second, "five probes logged", func() bool {
		n, _ := strconv.Atoi(e.inspect("hcout", "{{len .State.Health.Log}}"))
		return n >= 5
	})
	for i := range 5 {
		out := e.inspect("hcout", fmt.Sprintf("{{(index .State.Health.Log %d).Output}}", i))
		if out != "probe-output" {
			t.Fatalf("probe %d output %q, want %q", i, out, "probe-output")
		}
	}
}

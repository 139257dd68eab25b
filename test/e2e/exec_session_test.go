package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/engine"
	"github.com/berth-dev/berth/internal/errdefs"
)

// Exec sessions (issue 9.2): created, started, resized and inspected from
// any berth process; the container's monitor runs the process and records
// its exit. These tests drive sessions both through the CLI and through
// an engine of their own, a berth process other than the CLI's.

// openEngine opens the test's store in this process, as `berth serve`
// would.
func (e *env) openEngine(t *testing.T) *engine.Engine {
	t.Helper()
	eng, err := engine.New(context.Background(), engine.Config{Root: e.root, RunRoot: e.runroot, Runtime: os.Getenv("BERTH_RUNTIME"), Self: berthBin})
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

func uniqueName(prefix string) string { return fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()) }

func TestExecSessionLifecycle(t *testing.T) {
	e := newEnv(t)
	name := uniqueName("xs")
	e.must("run", "-d", "--name", name, "busybox", "sleep", "1000")
	eng := e.openEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("attached", func(t *testing.T) {
		created, err := eng.ExecCreate(ctx, engine.ExecCreateRequest{Container: name, AttachStdout: true, AttachStderr: true,
			Cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 7"}})
		if err != nil {
			t.Fatal(err)
		}
		if ids := e.inspect(name, "{{json .ExecIDs}}"); !strings.Contains(ids, created.ID) {
			t.Fatalf("ExecIDs %s lack the created session %s", ids, created.ID)
		}
		st, err := eng.ExecInspect(ctx, created.ID)
		if err != nil || st.Running || st.ExitCode != nil || st.ProcessConfig.Entrypoint != "sh" || !st.OpenStdout || st.OpenStdin {
			t.Fatalf("inspect before start: %+v, %v", st, err)
		}
		stream, err := eng.ExecStart(ctx, created.ID, engine.ExecStartRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		code, err := stream.Stream(ctx, nil, &stdout, &stderr)
		stream.Close()
		if err != nil || code != 7 || stdout.String() != "out\n" || stderr.String() != "err\n" {
			t.Fatalf("stream: code %d, %v, stdout %q, stderr %q", code, err, stdout.String(), stderr.String())
		}
		st, err = eng.ExecInspect(ctx, created.ID)
		if err != nil || st.Running || st.ExitCode == nil || *st.ExitCode != 7 || st.ContainerID == "" {
			t.Fatalf("inspect after exit: %+v, %v", st, err)
		}
		if ids := e.inspect(name, "{{json .ExecIDs}}"); strings.Contains(ids, created.ID) {
			t.Fatalf("ExecIDs %s still hold the finished session", ids)
		}
		if _, err := eng.ExecStart(ctx, created.ID, engine.ExecStartRequest{}); !errdefs.IsConflict(err) {
			t.Fatalf("second start: %v, want a conflict", err)
		}
	})

	t.Run("detached", func(t *testing.T) {
		created, err := eng.ExecCreate(ctx, engine.ExecCreateRequest{Container: name,
			Cmd: []string{"sh", "-c", "while [ ! -e /go-detached ]; do sleep 0.05; done; exit 4"}})
		if err != nil {
			t.Fatal(err)
		}
		if s, err := eng.ExecStart(ctx, created.ID, engine.ExecStartRequest{Detach: true}); err != nil || s != nil {
			t.Fatalf("detached start: %v, %v", s, err)
		}
		st, err := eng.ExecInspect(ctx, created.ID)
		if err != nil || !st.Running || st.Pid <= 0 {
			t.Fatalf("inspect of the running session: %+v, %v", st, err)
		}
		// Its parent is the container's monitor.
		if ppid := parentPid(t, st.Pid); ppid != monitorPid(t, e, name) {
			t.Fatalf("parent of the exec'd process is %d, not the monitor", ppid)
		}
		e.must("exec", name, "touch", "/go-detached")
		waitExecExit(t, eng, created.ID, 4)
	})

	t.Run("flags", func(t *testing.T) {
		envFile := filepath.Join(t.TempDir(), "env")
		if err := os.WriteFile(envFile, []byte("FROM_FILE=f\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out := e.must("exec", "-e", "A=1", "--env-file", envFile, "-w", "/tmp", "-u", "nobody", name,
			"sh", "-c", `echo "$A $FROM_FILE $(pwd) $(id -u)"`)
		if out != "1 f /tmp 65534\n" {
			t.Fatalf("exec -e --env-file -w -u: %q", out)
		}
		e.must("exec", "--privileged", name, "true")
		// -dt: a detached session with a terminal of its own.
		e.must("exec", "-dt", name, "sh", "-c", "tty > /dt.tmp; mv /dt.tmp /dt")
		eventually(t, 20*time.Second, "the detached terminal session", func() bool {
			return strings.HasPrefix(e.run("exec", name, "cat", "/dt").stdout, "/dev/pts/")
		})
	})

	t.Run("not-found", func(t *testing.T) {
		r := e.run("exec", name, "no-such-command")
		if r.code != 127 {
			t.Fatalf("exec of a missing command: %s, want exit 127", r)
		}
		r = e.run("exec", name, "/etc")
		if r.code != 126 {
			t.Fatalf("exec of a directory: %s, want exit 126", r)
		}
	})

	// A start that fails once the session is to run (its user or its
	// working directory missing) exits 126 and is recorded so, as
	// Docker's (the runtime refuses the exec there).
	t.Run("cannot-start", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			msg  string
		}{
			{[]string{"-u", "nosuchuser"}, "unable to find user nosuchuser"},
			{[]string{"-w", "/nonexistent"}, "/nonexistent"},
		} {
			r := e.run(append(append([]string{"exec"}, tc.args...), name, "true")...)
			if r.code != 126 || !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("exec %v: %s, want exit 126 and %q", tc.args, r, tc.msg)
			}
		}
		created, err := eng.ExecCreate(ctx, engine.ExecCreateRequest{Container: name, User: "nosuchuser", Cmd: []string{"true"}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = eng.ExecStart(ctx, created.ID, engine.ExecStartRequest{Container: name, Detach: true})
		if errdefs.ExitCode(err) != 126 {
			t.Fatalf("start of a session whose user is missing: %v, want exit status 126", err)
		}
		if st, err := eng.ExecInspect(ctx, created.ID); err != nil || st.Running || st.ExitCode == nil || *st.ExitCode != 126 {
			t.Fatalf("inspect after the failed start: %+v, %v; want exited 126", st, err)
		}
	})

	t.Run("paused-stopped", func(t *testing.T) {
		other := uniqueName("xs-stop")
		e.must("run", "-d", "--name", other, "busybox", "sleep", "1000")
		e.must("pause", other)
		r := e.run("exec", other, "true")
		if r.code != 1 || !strings.Contains(r.stderr, "is paused, unpause the container before exec") {
			t.Fatalf("exec into a paused container: %s, want Docker's exit 1 and message", r)
		}
		e.must("unpause", other)
		e.must("stop", "-t", "1", other)
		r = e.run("exec", other, "true")
		if r.code != 1 || !strings.Contains(r.stderr, "is not running") {
			t.Fatalf("exec into a stopped container: %s, want Docker's exit 1 and message", r)
		}
	})
}

// TestExecCallerKilled: SIGKILL of `berth exec` leaves the process
// running, owned by the monitor, and its exit is recorded for inspect.
func TestExecCallerKilled(t *testing.T) {
	e := newEnv(t)
	name := uniqueName("xk")
	e.must("run", "-d", "--name", name, "busybox", "sleep", "1000")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := e.command(ctx, "exec", name, "sh", "-c", "touch /started; while [ ! -e /go ]; do sleep 0.05; done; exit 9")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "the exec'd process to start", func() bool {
		return e.run("exec", name, "test", "-e", "/started").code == 0
	})
	var ids []string
	eventually(t, 10*time.Second, "the session in ExecIDs", func() bool {
		ids = strings.Fields(strings.Trim(e.inspect(name, "{{json .ExecIDs}}"), `[]"`))
		return len(ids) == 1
	})
	id := strings.Trim(ids[0], `"`)
	cmd.Process.Kill()
	cmd.Wait()
	eng := e.openEngine(t)
	st, err := eng.ExecInspect(ctx, id)
	if err != nil || !st.Running || st.Pid <= 0 {
		t.Fatalf("after the caller's SIGKILL: %+v, %v", st, err)
	}
	if unix.Kill(st.Pid, 0) != nil {
		t.Fatalf("the exec'd process %d died with its caller", st.Pid)
	}
	if ppid := parentPid(t, st.Pid); ppid != monitorPid(t, e, name) {
		t.Fatalf("parent of the exec'd process is %d, not the monitor", ppid)
	}
	e.must("exec", name, "touch", "/go")
	waitExecExit(t, eng, id, 9)
}

// TestExecResize: a -t session follows the caller's terminal (SIGWINCH),
// and a session can be resized from another process.
func TestExecResize(t *testing.T) {
	e := newEnv(t)
	name := uniqueName("xr")
	e.must("run", "-d", "--name", name, "busybox", "sleep", "1000")

	s := e.startPTY(t, "exec", "-it", name, "sh")
	s.waitFor("# ")
	fmt.Fprint(s.tty, "echo size-$(stty size | tr ' ' x)-end\n")
	s.waitFor("size-30x100-end")
	if err := pty.Setsize(s.tty.(*os.File), &pty.Winsize{Rows: 41, Cols: 133}); err != nil {
		t.Fatal(err)
	}
	// The window change reaches the process asynchronously: ask again
	// until it has.
	eventually(t, 20*time.Second, "the resized terminal", func() bool {
		fmt.Fprint(s.tty, "echo size-$(stty size | tr ' ' x)-end\n")
		time.Sleep(100 * time.Millisecond)
		return strings.Contains(s.output(), "size-41x133-end")
	})
	fmt.Fprint(s.tty, "exit 0\n")
	if code := s.exitCode(); code != 0 {
		t.Fatalf("exec -it: exit %d\n%s", code, s.output())
	}

	eng := e.openEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	created, err := eng.ExecCreate(ctx, engine.ExecCreateRequest{Container: name, Tty: true, AttachStdout: true,
		Cmd: []string{"sh", "-c", "stty size > /size1.tmp; mv /size1.tmp /size1; while [ ! -e /go-resize ]; do sleep 0.05; done; stty size"}})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := eng.ExecStart(ctx, created.ID, engine.ExecStartRequest{Tty: true, ConsoleSize: &[2]uint{20, 70}})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		code, err := stream.Stream(ctx, nil, &out, nil)
		if err == nil && code != 0 {
			err = fmt.Errorf("exit %d", code)
		}
		done <- err
	}()
	eventually(t, 20*time.Second, "the start size to be read", func() bool {
		return e.run("exec", name, "test", "-e", "/size1").code == 0
	})
	if err := eng.ExecResize(ctx, created.ID, 33, 77); err != nil {
		t.Fatal(err)
	}
	e.must("exec", name, "touch", "/go-resize")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(e.must("exec", name, "cat", "/size1")); got != "20 70" {
		t.Errorf("terminal size at the start %q, want 20 70", got)
	}
	if got := strings.ReplaceAll(out.String(), "\r", ""); got != "33 77\n" {
		t.Fatalf("terminal size after the resize %q, want 33 77", got)
	}
	if err := eng.ExecResize(ctx, created.ID, 10, 10); !errdefs.IsConflict(err) {
		t.Fatalf("resize of a finished session: %v, want a conflict", err)
	}
}

// TestExecRlimits (issue 8.11): an exec'd process gets the container's
// RLIMIT_NOFILE whatever the caller's limits, even a caller whose hard
// limit is below the container's.
func TestExecRlimits(t *testing.T) {
	e := newEnv(t)
	name := uniqueName("xl")
	e.must("run", "-d", "--name", name, "busybox", "sleep", "1000")
	nofile := regexp.MustCompile(`Max open files +(\d+) +(\d+)`)
	limits := func(out string) string {
		m := nofile.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no open files limit in %q", out)
		}
		return m[1] + ":" + m[2]
	}
	container := limits(e.must("exec", name, "cat", "/proc/1/limits"))
	if soft := strings.Split(container, ":")[0]; soft != "1024" {
		t.Errorf("container's RLIMIT_NOFILE %s, want the default soft limit 1024", container)
	}
	if holdsCapability(unix.CAP_SYS_RESOURCE) && container != "1024:524288" {
		t.Errorf("container's RLIMIT_NOFILE %s, want the default 1024:524288", container)
	}
	if got := limits(e.must("exec", name, "cat", "/proc/self/limits")); got != container {
		t.Errorf("exec'd process has RLIMIT_NOFILE %s, the container %s", got, container)
	}
	// A caller with a low hard limit.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append([]string{"-c", `ulimit -n 512 && exec "$0" "$@"`, berthBin, "--root", e.root, "--runroot", e.runroot}, "exec", name, "cat", "/proc/self/limits")
	cmd := exec.CommandContext(ctx, "/bin/sh", args...)
	cmd.Env = append(os.Environ(), "BERTH_ROOT=", "BERTH_RUNROOT=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("exec from a caller with ulimit -n 512: %v\n%s", err, out)
	}
	if got := limits(string(out)); got != container {
		t.Errorf("exec from a 512:512 caller: RLIMIT_NOFILE %s, the container %s", got, container)
	}
	if holdsCapability(unix.CAP_SYS_RESOURCE) {
		// run from that caller gets the same default.
		run := exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", `ulimit -n 512 && exec "$0" "$@"`, berthBin, "--root", e.root, "--runroot", e.runroot}, "run", "--rm", "busybox", "cat", "/proc/self/limits")...)
		run.Env = cmd.Env
		out, err := run.CombinedOutput()
		if err != nil || limits(string(out)) != container {
			t.Errorf("run from a 512:512 caller: %v\n%s", err, out)
		}
	}
}

// holdsCapability tells whether this process has cap in its effective set.
func holdsCapability(c int) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if unix.Capget(&hdr, &data[0]) != nil {
		return false
	}
	return data[c/32].Effective&(1<<(uint(c)%32)) != 0
}

func waitExecExit(t *testing.T, eng *engine.Engine, id string, want int) {
	t.Helper()
	ctx := context.Background()
	eventually(t, 20*time.Second, "the session's exit to be recorded", func() bool {
		st, err := eng.ExecInspect(ctx, id)
		return err == nil && !st.Running && st.ExitCode != nil
	})
	st, _ := eng.ExecInspect(ctx, id)
	if *st.ExitCode != want || st.Pid != 0 {
		t.Fatalf("finished session: exit %d pid %d, want exit %d", *st.ExitCode, st.Pid, want)
	}
}

func parentPid(t *testing.T, pid int) int {
	t.Helper()
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "PPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	t.Fatalf("no PPid for %d", pid)
	return 0
}

// TestExecSessionsEndWithADeadMonitor: a monitor killed with -9 takes its
// container and its exec sessions down; reads show the sessions ended (137)
// at once, and the next transition records it.
func TestExecSessionsEndWithADeadMonitor(t *testing.T) {
	e := newEnv(t)
	name := uniqueName("xdead")
	e.must("run", "-d", "--name", name, "busybox", "sleep", "1000")
	eng := e.openEngine(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	created, err := eng.ExecCreate(ctx, engine.ExecCreateRequest{Container: name, Cmd: []string{"sleep", "1000"}})
	if err != nil {
		t.Fatal(err)
	}
	if stream, err := eng.ExecStart(ctx, created.ID, engine.ExecStartRequest{Detach: true}); err != nil {
		t.Fatal(err)
	} else if stream != nil {
		stream.Close()
	}
	eventually(t, 20*time.Second, "the session running", func() bool {
		st, err := eng.ExecInspect(ctx, created.ID)
		return err == nil && st.Running
	})
	if err := unix.Kill(monitorPid(t, e, name), unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ended := func(when string) {
		t.Helper()
		eventually(t, 20*time.Second, "the session ended "+when, func() bool {
			st, err := eng.ExecInspect(ctx, created.ID)
			return err == nil && !st.Running && st.ExitCode != nil && *st.ExitCode == 137
		})
	}
	ended("as read")
	e.must("stop", name) // reconciles the container
	ended("as recorded")
	if ids := e.inspect(name, "{{json .ExecIDs}}"); ids != "null" && ids != "[]" {
		t.Fatalf("ExecIDs after the container died: %s", ids)
	}
}

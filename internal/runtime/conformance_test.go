package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/testutil"
)

// Integration tests: real containers run by runc from a busybox rootfs.
// They need root and runc; in CI (CI=true) their absence is a failure.

const testTimeout = 30 * time.Second

var subreaperOnce sync.Once

// becomeSubreaper makes the test process the reaper of the containers'
// processes, which runc leaves behind as orphans, so that it can wait for
// them as berth's monitor does.
func becomeSubreaper(t *testing.T) {
	subreaperOnce.Do(func() {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			t.Fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
		}
	})
}

var idCounter atomic.Int64

// testEnv is one test's runtime, its state dir and a busybox rootfs.
type testEnv struct {
	rt Runtime
	// runc is rt when it is runc, for what only runc has: a container
	// created and not started yet.
	runc   *Binary
	rootfs string
	// configJSON makes create write a plain config.json bundle rather
	// than the runtime's own form.
	configJSON bool
}

// testRuntimes are the runtimes every conformance test runs against:
// runc, the built-in runtime, and the built-in runtime driven through
// its runc-compatible command line (berth built and called as berth-runc)
// by the same adapter that drives runc.
var testRuntimes = []string{"runc", BuiltinName, berthRuncName}

const berthRuncName = "berth-runc"

var berthRunc struct {
	once sync.Once
	path string
	err  error
}

// berthRuncBinary builds berth once per test process, statically as the
// README does, and links it as berth-runc.
func berthRuncBinary(t *testing.T) string {
	t.Helper()
	berthRunc.once.Do(func() {
		dir, err := os.MkdirTemp("", "berth-runc-")
		if err != nil {
			berthRunc.err = err
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "berth"), "github.com/berth-dev/berth/cmd/berth")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			berthRunc.err = fmt.Errorf("building berth: %v\n%s", err, out)
			return
		}
		berthRunc.path = filepath.Join(dir, berthRuncName)
		berthRunc.err = os.Symlink("berth", berthRunc.path)
	})
	if berthRunc.err != nil {
		t.Fatal(berthRunc.err)
	}
	return berthRunc.path
}

// forEachRuntime runs test once per runtime, as a subtest named after it.
func forEachRuntime(t *testing.T, test func(t *testing.T, e *testEnv)) {
	for _, name := range testRuntimes {
		t.Run(name, func(t *testing.T) { test(t, newTestEnv(t, name)) })
	}
}

func newTestEnv(t *testing.T, name string) *testEnv {
	t.Helper()
	testutil.RequiresRoot(t)
	becomeSubreaper(t)
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	testutil.BusyboxRootfs(t, rootfs)
	if name == BuiltinName {
		// The test binary is its own _init and _exec (see TestMain).
		b := &Builtin{Root: filepath.Join(t.TempDir(), "berth")}
		removeViewsAtCleanup(t, b)
		return &testEnv{rt: b, rootfs: rootfs}
	}
	var bin string
	if name == berthRuncName {
		bin = berthRuncBinary(t)
	} else {
		bin = testutil.RequiresBinary(t, "runc")
	}
	runc := &Binary{Binary: bin, Root: filepath.Join(t.TempDir(), "runc")}
	if name == berthRuncName {
		// berth-runc keeps its read-only copies of itself under its --root.
		removeViewsAtCleanup(t, &Builtin{Root: runc.Root})
	}
	return &testEnv{rt: runc, runc: runc, rootfs: rootfs}
}

func (e *testEnv) opts(args ...string) SpecOptions {
	return SpecOptions{Hostname: "testhost", Rootfs: e.rootfs, Args: args, NetworkMode: "none"}
}

// newID returns a unique container id and deletes that container when the
// test ends, whatever happened.
func (e *testEnv) newID(t *testing.T) string {
	id := fmt.Sprintf("berth-test-%d-%d", os.Getpid(), idCounter.Add(1))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		if err := e.rt.Delete(ctx, id, true); err != nil {
			t.Errorf("cleanup: delete %s: %v", id, err)
		}
	})
	return id
}

// created is a container made by Create, with pipes on its stdio.
type created struct {
	id, bundle string
	pid        int
	stdout     *capture
	stderr     *capture
	stdin      *os.File // write end of the container's stdin, or nil
}

// capture collects what a pipe's read end receives until EOF.
type capture struct {
	buf  bytes.Buffer
	done chan struct{}
}

func newCapture(t *testing.T) (*capture, *os.File) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &capture{done: make(chan struct{})}
	go func() {
		io.Copy(&c.buf, r)
		r.Close()
		close(c.done)
	}()
	return c, w
}

func (c *capture) String(t *testing.T) string {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(testTimeout):
		t.Fatal("container output did not end")
	}
	return c.buf.String()
}

// create generates the spec for opts, writes the bundle and runs Create
// (Run for runtimes without a created state; start is then a no-op).
func (e *testEnv) create(t *testing.T, opts SpecOptions, withStdin bool) (*created, error) {
	t.Helper()
	id := e.newID(t)
	spec, err := Generate(opts)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	bundle := t.TempDir()
	write := e.rt.WriteBundle
	if e.configJSON {
		write = WriteBundle
	}
	if err := write(bundle, spec); err != nil {
		t.Fatal(err)
	}
	c := &created{id: id, bundle: bundle}
	var outW, errW, inR *os.File
	c.stdout, outW = newCapture(t)
	c.stderr, errW = newCapture(t)
	if withStdin {
		if inR, c.stdin, err = os.Pipe(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.stdin.Close() })
	}
	pidFile := filepath.Join(bundle, "init.pid")
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if e.runc != nil {
		err = e.runc.Create(ctx, id, bundle, pidFile, IO{Stdin: inR, Stdout: outW, Stderr: errW})
	} else { // no created state: it runs at once
		err = e.rt.Run(ctx, id, bundle, pidFile, IO{Stdin: inR, Stdout: outW, Stderr: errW})
	}
	outW.Close() // the container holds its own copies
	errW.Close()
	if inR != nil {
		inR.Close()
	}
	if err != nil {
		return c, err
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	if c.pid, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
		t.Fatalf("pid file %q: %v", b, err)
	}
	return c, nil
}

// wait reaps the container's init process and returns its exit code
// (128+n when killed by signal n). On timeout it kills the container.
func (e *testEnv) wait(t *testing.T, c *created) int {
	t.Helper()
	type result struct {
		ws  unix.WaitStatus
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(c.pid, &ws, 0, nil)
			if errors.Is(err, unix.EINTR) {
				continue
			}
			ch <- result{ws, err}
			return
		}
	}()
	var r result
	select {
	case r = <-ch:
	case <-time.After(testTimeout):
		e.rt.Kill(context.Background(), c.id, unix.SIGKILL, true)
		r = <-ch
		t.Fatalf("container %s did not exit within %v", c.id, testTimeout)
	}
	if r.err != nil {
		t.Fatalf("wait4(%d): %v (is the test process not its reaper?)", c.pid, r.err)
	}
	if r.ws.Signaled() {
		return 128 + int(r.ws.Signal())
	}
	return r.ws.ExitStatus()
}

// start starts a created container.
func (e *testEnv) start(t *testing.T, c *created) {
	t.Helper()
	if e.runc == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := e.runc.Start(ctx, c.id); err != nil {
		t.Fatalf("Start: %v", err)
	}
}

// run creates, starts and waits for a container and returns its exit code,
// stdout and stderr.
func (e *testEnv) run(t *testing.T, opts SpecOptions) (int, string, string) {
	t.Helper()
	c, err := e.create(t, opts, false)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	e.start(t, c)
	code := e.wait(t, c)
	return code, c.stdout.String(t), c.stderr.String(t)
}

func TestEchoHello(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, e *testEnv) {
		code, out, errOut := e.run(t, e.opts("echo", "hello"))
		if code != 0 || out != "hello\n" || errOut != "" {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 0, \"hello\\n\", \"\"", code, out, errOut)
		}
	})
}

func TestExitCodeAndEnvironment(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, e *testEnv) {
		tests := []struct {
			name   string
			opts   func(o *SpecOptions)
			args   []string
			code   int
			stdout string
		}{
			{name: "exit status", args: []string{"sh", "-c", "exit 7"}, code: 7},
			{name: "hostname and env", args: []string{"sh", "-c", "echo $(hostname) $HOSTNAME $HOME $FOO $PATH"},
				opts:   func(o *SpecOptions) { o.Env = []string{"FOO=bar"} },
				stdout: "testhost testhost /root bar " + DefaultPathEnv + "\n"},
			{name: "root id", args: []string{"id"}, stdout: "uid=0(root) gid=0(root) groups=0(root),10(wheel)\n"},
			{name: "user nobody", args: []string{"sh", "-c", "id; echo $HOME"}, opts: func(o *SpecOptions) { o.User = "nobody" },
				stdout: "uid=65534(nobody) gid=65534(nobody) groups=65534(nobody)\n/home\n"},
			{name: "uid:gid with group-add", args: []string{"id"}, opts: func(o *SpecOptions) { o.User = "1234:100"; o.GroupAdd = []string{"audio"} },
				stdout: "uid=1234 gid=100(users) groups=29(audio),100(users)\n"},
			// ls lists its own descriptors: stdio plus the directory it reads.
			{name: "only stdio open", args: []string{"ls", "/proc/self/fd"}, stdout: "0\n1\n2\n3\n"},
			{name: "cwd created", args: []string{"pwd"}, opts: func(o *SpecOptions) { o.Cwd = "/work/dir" }, stdout: "/work/dir\n"},
			{name: "read-only root", args: []string{"sh", "-c", "touch /x 2>/dev/null && echo writable || echo read-only"},
				opts: func(o *SpecOptions) { o.ReadOnlyRootfs = true }, stdout: "read-only\n"},
			{name: "no network but loopback", args: []string{"sh", "-c", "ls /sys/class/net; ip -4 -o addr show lo | grep -c 127.0.0.1/8"}, stdout: "lo\n1\n"},
			{name: "shm size", args: []string{"sh", "-c", "df -k /dev/shm | tail -n 1 | awk '{print $2}'"},
				opts: func(o *SpecOptions) { o.ShmSize = 8 << 20 }, stdout: "8192\n"},
			{name: "tmpfs mount", args: []string{"sh", "-c", "grep ' /scratch ' /proc/mounts | cut -d' ' -f3"},
				opts: func(o *SpecOptions) { o.Mounts = []Mount{{Type: "tmpfs", Destination: "/scratch"}} }, stdout: "tmpfs\n"},
			{name: "pids limit", args: []string{"cat", "/sys/fs/cgroup/pids/pids.max"},
				opts: func(o *SpecOptions) { o.Resources.PidsLimit = 42 }, stdout: "42\n"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				opts := e.opts(tc.args...)
				if tc.opts != nil {
					tc.opts(&opts)
				}
				code, out, errOut := e.run(t, opts)
				if code != tc.code || out != tc.stdout {
					t.Errorf("exit %d, stdout %q (stderr %q); want %d, %q", code, out, errOut, tc.code, tc.stdout)
				}
			})
		}
	})
}

func TestCommandCannotRun(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, e *testEnv) {
		if err := os.WriteFile(filepath.Join(e.rootfs, "bin", "garbage"), []byte("not a program\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			args []string
			code int
			msg  string
		}{
			{name: "not in PATH", args: []string{"nosuchcmd"}, code: 127, msg: `exec: "nosuchcmd": executable file not found in $PATH`},
			{name: "absent path", args: []string{"/no/such/cmd"}, code: 127, msg: `exec: "/no/such/cmd": stat /no/such/cmd: no such file or directory`},
			{name: "not executable", args: []string{"/etc/passwd"}, code: 126, msg: `exec: "/etc/passwd": permission denied`},
			{name: "directory", args: []string{"/tmp"}, code: 126, msg: `exec: "/tmp": permission denied`},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				_, err := e.create(t, e.opts(tc.args...), false)
				var st *errdefs.ExitStatus
				if !errors.As(err, &st) || st.Code != tc.code || st.Msg != tc.msg {
					t.Fatalf("Create: %v, want exit status %d %q", err, tc.code, tc.msg)
				}
			})
		}

		// runc 1.1 checks only that the file is executable before `start`; a
		// file the kernel cannot execute fails in execve after start, so the
		// container exits with status 1 and runc's message on its stderr
		// (as with Docker).
		t.Run("exec format error", func(t *testing.T) {
			code, _, errOut := e.run(t, e.opts("/bin/garbage"))
			if code != 1 || !strings.Contains(errOut, "exec format error") {
				t.Fatalf("exit %d, stderr %q; want 1 and exec format error", code, errOut)
			}
		})
	})
}

func TestCapabilities(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, e *testEnv) {
		tests := []struct {
			name    string
			capDrop []string
			want    string
		}{
			{name: "default", want: "ok\n"},
			{name: "CHOWN dropped", capDrop: []string{"CHOWN"}, want: "denied\n"},
			{name: "ALL dropped", capDrop: []string{"ALL"}, want: "denied\n"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				opts := e.opts("sh", "-c", "f=$(mktemp) && (chown 1:1 $f 2>/dev/null && echo ok || echo denied)")
				opts.CapDrop = tc.capDrop
				code, out, errOut := e.run(t, opts)
				if code != 0 || out != tc.want {
					t.Errorf("exit %d, stdout %q (stderr %q), want %q", code, out, errOut, tc.want)
				}
			})
		}
	})
}

func TestMaskedAndReadonlyPaths(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, e *testEnv) {
		// /proc/kcore is the classic example, but not every kernel has it.
		masked := ""
		for _, p := range []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/interrupts"} {
			if f, err := os.Open(p); err == nil {
				n, _ := f.Read(make([]byte, 1))
				f.Close()
				if n == 1 {
					masked = p
					break
				}
			}
		}
		if masked == "" {
			testutil.Skip(t, "no readable /proc file among Docker's masked paths")
		}
		firstByte := "head -c 1 " + masked + " | wc -c"
		tests := []struct {
			name       string
			privileged bool
			args       []string
			want       string
		}{
			{name: masked + " masked", args: []string{"sh", "-c", firstByte}, want: "0\n"},
			{name: "privileged sees " + masked, privileged: true, args: []string{"sh", "-c", firstByte}, want: "1\n"},
			{name: "proc sys read-only", args: []string{"sh", "-c", "echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo writable || echo read-only"}, want: "read-only\n"},
			{name: "sys read-only", args: []string{"sh", "-c", "grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1"}, want: "ro\n"},
			{name: "privileged sys writable", privileged: true, args: []string{"sh", "-c", "grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1"}, want: "rw\n"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				opts := e.opts(tc.args...)
				opts.Privileged = tc.privileged
				code, out, errOut := e.run(t, opts)
				if code != 0 || out != tc.want {
					t.Errorf("exit %d, stdout %q (stderr %q), want %q", code, out, errOut, tc.want)
				}
			})
		}
	})
}

func TestSeccomp(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, e *testEnv) {
		// A profile that allows everything but unshare(2).
		noUnshare := filepath.Join(t.TempDir(), "no-unshare.json")
		if err := os.WriteFile(noUnshare, []byte(`{"defaultAction":"SCMP_ACT_ALLOW",
			"syscalls":[{"names":["unshare"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}`), 0o644); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name    string
			capAdd  []string
			profile string
			want    string
		}{
			{name: "default profile blocks unshare", want: "blocked\n"},
			{name: "default profile with CAP_SYS_ADMIN allows it", capAdd: []string{"SYS_ADMIN"}, want: "allowed\n"},
			{name: "profile file blocks it despite CAP_SYS_ADMIN", capAdd: []string{"SYS_ADMIN"}, profile: noUnshare, want: "blocked\n"},
			{name: "unconfined with CAP_SYS_ADMIN", capAdd: []string{"SYS_ADMIN"}, profile: "unconfined", want: "allowed\n"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				opts := e.opts("sh", "-c", "unshare -u true 2>/dev/null && echo allowed || echo blocked")
				opts.CapAdd, opts.SeccompProfile = tc.capAdd, tc.profile
				code, out, errOut := e.run(t, opts)
				if code != 0 || out != tc.want {
					t.Errorf("exit %d, stdout %q (stderr %q), want %q", code, out, errOut, tc.want)
				}
			})
		}
	})
}

func TestRlimits(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, e *testEnv) {
		var host unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &host); err != nil {
			t.Fatal(err)
		}
		wantHard := min(uint64(defaultNofileHard), host.Max)
		wantSoft := min(uint64(defaultNofileSoft), wantHard)
		tests := []struct {
			name    string
			ulimits []Ulimit
			want    string
		}{
			{name: "default clamped to host", want: fmt.Sprintf("%d %d\n", wantSoft, wantHard)},
			{name: "explicit", ulimits: []Ulimit{{Name: "nofile", Soft: 100, Hard: 200}}, want: "100 200\n"},
			{name: "explicit at host hard limit", ulimits: []Ulimit{{Name: "nofile", Soft: 64, Hard: host.Max}}, want: fmt.Sprintf("64 %d\n", host.Max)},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				opts := e.opts("sh", "-c", `echo "$(ulimit -n) $(ulimit -Hn)"`)
				opts.Ulimits = tc.ulimits
				code, out, errOut := e.run(t, opts)
				if code != 0 || out != tc.want {
					t.Errorf("exit %d, stdout %q (stderr %q), want %q", code, out, errOut, tc.want)
				}
			})
		}

		// Above the host's hard limit, only a runtime holding CAP_SYS_RESOURCE
		// can raise it: Generate refuses otherwise, naming the limit.
		t.Run("explicit above host", func(t *testing.T) {
			_, eff, err := liveHost{}.ownCapabilities()
			if err != nil {
				t.Fatal(err)
			}
			opts := e.opts("sh", "-c", `echo "$(ulimit -n) $(ulimit -Hn)"`)
			opts.Ulimits = []Ulimit{{Name: "nofile", Soft: host.Max + 1, Hard: host.Max + 1}}
			if !slices.Contains(eff, "CAP_SYS_RESOURCE") {
				if _, err := Generate(opts); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "CAP_SYS_RESOURCE") {
					t.Fatalf("Generate: %v, want invalid argument about CAP_SYS_RESOURCE", err)
				}
				return
			}
			code, out, errOut := e.run(t, opts)
			if want := fmt.Sprintf("%d %d\n", host.Max+1, host.Max+1); code != 0 || out != want {
				t.Errorf("exit %d, stdout %q (stderr %q), want %q", code, out, errOut, want)
			}
		})
	})
}

func TestLifecycle(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, e *testEnv) {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()

		c, err := e.create(t, e.opts("sh", "-c", "echo started; exec sleep 1000"), false)
		if err != nil {
			t.Fatal(err)
		}
		if e.runc != nil {
			st, err := e.rt.State(ctx, c.id)
			if err != nil || st.Status != specs.StateCreated || st.Pid != c.pid || st.ID != c.id || st.Bundle != c.bundle {
				t.Fatalf("State after create = %+v, %v", st, err)
			}
			e.start(t, c)
			if err := e.runc.Start(ctx, c.id); !errdefs.IsConflict(err) {
				t.Errorf("second Start: %v, want conflict", err)
			}
		}
		if st, err := e.rt.State(ctx, c.id); err != nil || st.Status != specs.StateRunning || st.Pid != c.pid || st.ID != c.id || st.Bundle != c.bundle {
			t.Fatalf("State after start = %+v, %v", st, err)
		}
		if pids, err := e.rt.Ps(ctx, c.id); err != nil || !slices.Contains(pids, c.pid) {
			t.Errorf("Ps = %v, %v; want to contain %d", pids, err, c.pid)
		}

		if err := e.rt.Pause(ctx, c.id); err != nil {
			t.Fatal(err)
		}
		if st, err := e.rt.State(ctx, c.id); err != nil || st.Status != "paused" {
			t.Errorf("State after pause = %+v, %v", st, err)
		}
		if err := e.rt.Resume(ctx, c.id); err != nil {
			t.Fatal(err)
		}
		if err := e.rt.Resume(ctx, c.id); !errdefs.IsConflict(err) {
			t.Errorf("Resume of a running container: %v, want conflict", err)
		}

		t.Run("exec", func(t *testing.T) { testExec(t, e, c) })

		if err := e.rt.Delete(ctx, c.id, false); !errdefs.IsConflict(err) {
			t.Errorf("Delete of a running container without force: %v, want conflict", err)
		}
		if err := e.rt.Kill(ctx, c.id, syscall.SIGKILL, false); err != nil {
			t.Fatal(err)
		}
		if code := e.wait(t, c); code != 137 {
			t.Errorf("exit code after SIGKILL = %d, want 137", code)
		}
		if out := c.stdout.String(t); out != "started\n" {
			t.Errorf("stdout = %q", out)
		}
		if st, err := e.rt.State(ctx, c.id); err != nil || st.Status != specs.StateStopped {
			t.Errorf("State after kill = %+v, %v", st, err)
		}
		if err := e.rt.Kill(ctx, c.id, syscall.SIGTERM, false); !errdefs.IsConflict(err) {
			t.Errorf("Kill of a stopped container: %v, want conflict", err)
		}
		if err := e.rt.Delete(ctx, c.id, false); err != nil {
			t.Fatal(err)
		}
		if _, err := e.rt.State(ctx, c.id); !errdefs.IsNotFound(err) {
			t.Errorf("State after delete: %v, want not found", err)
		}
		if err := e.rt.Delete(ctx, c.id, false); err != nil {
			t.Errorf("second Delete: %v, want nil", err)
		}
		for name, op := range map[string]func() error{
			"kill":   func() error { return e.rt.Kill(ctx, c.id, syscall.SIGTERM, true) },
			"pause":  func() error { return e.rt.Pause(ctx, c.id) },
			"resume": func() error { return e.rt.Resume(ctx, c.id) },
			"ps":     func() error { _, err := e.rt.Ps(ctx, c.id); return err },
		} {
			if err := op(); !errdefs.IsNotFound(err) {
				t.Errorf("%s of a deleted container: %v, want not found", name, err)
			}
		}
	})
}

// testExec runs processes in the running container c.
func testExec(t *testing.T, e *testEnv, c *created) {
	proc := func(args ...string) *specs.Process {
		return &specs.Process{Args: args, Cwd: "/", Env: []string{"PATH=" + DefaultPathEnv}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
	}{
		{name: "echo", args: []string{"echo", "hi"}, stdout: "hi\n"},
		{name: "exit status", args: []string{"sh", "-c", "exit 3"}, code: 3},
		{name: "same pid namespace", args: []string{"sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"}, stdout: "sleep 1000 "},
		{name: "killed by signal", args: []string{"sh", "-c", "kill -9 $$"}, code: 137},
		// The pipe carrying the process JSON must not leak into it: ls sees
		// stdio and the directory it reads.
		{name: "only stdio open", args: []string{"ls", "/proc/self/fd"}, stdout: "0\n1\n2\n3\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, w := newCapture(t)
			pidFile := filepath.Join(t.TempDir(), "exec.pid")
			cmd, err := e.rt.Exec(ctx, c.id, proc(tc.args...), pidFile, IO{Stdout: w}, false)
			w.Close()
			if err != nil {
				t.Fatal(err)
			}
			code := 0
			if err := cmd.Wait(); err != nil {
				var ee *exec.ExitError
				if !errors.As(err, &ee) {
					t.Fatal(err)
				}
				code = ee.ExitCode()
			}
			if code != tc.code || out.String(t) != tc.stdout {
				t.Errorf("exit %d, stdout %q; want %d, %q", code, out.String(t), tc.code, tc.stdout)
			}
			if b, err := os.ReadFile(pidFile); err != nil || len(bytes.TrimSpace(b)) == 0 {
				t.Errorf("pid file: %q, %v", b, err)
			}
		})
	}

	for _, detach := range []bool{false, true} {
		for _, tc := range []struct {
			name string
			args []string
			code int
		}{
			{name: "not in PATH", args: []string{"nosuchcmd"}, code: 127},
			{name: "not executable", args: []string{"/etc/passwd"}, code: 126},
		} {
			t.Run(fmt.Sprintf("%s detach=%v", tc.name, detach), func(t *testing.T) {
				cmd, err := e.rt.Exec(ctx, c.id, proc(tc.args...), "", IO{}, detach)
				var st *errdefs.ExitStatus
				if cmd != nil || !errors.As(err, &st) || st.Code != tc.code || !strings.HasPrefix(st.Msg, `exec: "`+tc.args[0]+`"`) {
					t.Fatalf("Exec = %v, %v; want exit status %d", cmd, err, tc.code)
				}
			})
		}
	}

	t.Run("detached", func(t *testing.T) {
		pidFile := filepath.Join(t.TempDir(), "exec.pid")
		cmd, err := e.rt.Exec(ctx, c.id, proc("sh", "-c", "exit 5"), pidFile, IO{}, true)
		if err != nil || cmd != nil {
			t.Fatalf("Exec = %v, %v", cmd, err)
		}
		b, err := os.ReadFile(pidFile)
		if err != nil {
			t.Fatal(err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		// The detached process is re-parented to us, its subreaper.
		code := e.wait(t, &created{id: c.id, pid: pid})
		if code != 5 {
			t.Errorf("detached exec exit = %d, want 5", code)
		}
	})

	t.Run("stdin", func(t *testing.T) {
		out, w := newCapture(t)
		r, in, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd, err := e.rt.Exec(ctx, c.id, proc("tr", "a-z", "A-Z"), "", IO{Stdin: r, Stdout: w}, false)
		r.Close()
		w.Close()
		if err != nil {
			in.Close()
			t.Fatal(err)
		}
		in.WriteString("shout\n")
		in.Close()
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		if got := out.String(t); got != "SHOUT\n" {
			t.Errorf("stdout = %q", got)
		}
	})
}

func TestCreateDuplicateAndMissing(t *testing.T) {
	forEachRuntime(t, func(t *testing.T, e *testEnv) {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		c, err := e.create(t, e.opts("true"), false)
		if err != nil {
			t.Fatal(err)
		}
		if e.runc != nil {
			err = e.runc.Create(ctx, c.id, c.bundle, filepath.Join(t.TempDir(), "pid"), IO{})
		} else {
			err = e.rt.Run(ctx, c.id, c.bundle, filepath.Join(t.TempDir(), "pid"), IO{})
		}
		if !errdefs.IsConflict(err) {
			t.Errorf("Create with a used id: %v, want conflict", err)
		}
		if _, err := e.rt.State(ctx, "berth-test-never-created"); !errdefs.IsNotFound(err) {
			t.Errorf("State of unknown: %v, want not found", err)
		}
		if err := e.rt.Delete(ctx, "berth-test-never-created", true); err != nil {
			t.Errorf("Delete of unknown: %v", err)
		}

		missing := &Binary{Binary: "berth-no-such-runtime", Root: t.TempDir()}
		if err := missing.Start(ctx, "x"); !errors.Is(err, errdefs.ErrUnavailable) {
			t.Errorf("missing runtime binary: %v, want unavailable", err)
		}
	})
}

func init() {
	// The built-in runtime runs this test binary as its _init, which must
	// stay on the main thread (as cmd/berth arranges for berth).
	if len(os.Args) > 1 && os.Args[1] == "_init" {
		goruntime.LockOSThread()
	}
}

func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "_init":
			os.Exit(InitMain(os.Args[2:]))
		case "_exec":
			os.Exit(ExecMain(os.Args[2:]))
		case forkExecRotateArg:
			os.Exit(forkExecRotate(os.Args[2:]))
		}
	}
	code := m.Run()
	if berthRunc.path != "" {
		os.RemoveAll(filepath.Dir(berthRunc.path))
	}
	os.Exit(code)
}

// TestBuiltinRefusesWhatItLacks: a spec asking for something the built-in
// runtime does not implement is refused with a clear error, by WriteBundle
// before anything exists, and by Run for a bundle with only a config.json,
// which leaves no state, cgroup or process behind.
func TestBuiltinRefusesWhatItLacks(t *testing.T) {
	e := newTestEnv(t, BuiltinName)
	tests := []struct {
		name  string
		edit  func(*specs.Spec)
		field string
	}{
		{"personality", func(s *specs.Spec) { s.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux32} }, "linux.personality"},
		{"user namespace", func(s *specs.Spec) { s.Linux.UIDMappings = []specs.LinuxIDMapping{{HostID: 1000, Size: 1}} }, "linux.uidMappings"},
		{"io priority", func(s *specs.Spec) { s.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_IDLE} }, "process.ioPriority"},
		{"username", func(s *specs.Spec) { s.Process.User.Username = "web" }, "process.user.username"},
		{"seccomp notify", func(s *specs.Spec) { s.Linux.Seccomp.ListenerPath = "/run/agent.sock" }, "seccomp notify"},
		{"id-mapped mount", func(s *specs.Spec) {
			s.Mounts[0].UIDMappings = []specs.LinuxIDMapping{{HostID: 1000, Size: 1}}
		}, "ID-mapped mounts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := Generate(e.opts("true"))
			if err != nil {
				t.Fatal(err)
			}
			tt.edit(spec)
			want := func(err error) {
				t.Helper()
				if err == nil || !strings.Contains(err.Error(), tt.field) || !strings.Contains(err.Error(), "--runtime runc") {
					t.Fatalf("got %v; want an error naming %s and --runtime runc", err, tt.field)
				}
			}
			want(e.rt.WriteBundle(t.TempDir(), spec))

			bundle := t.TempDir()
			if err := WriteBundle(bundle, spec); err != nil {
				t.Fatal(err)
			}
			id := e.newID(t)
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			want(e.rt.Run(ctx, id, bundle, filepath.Join(bundle, "pid"), IO{}))
			if e.rt.HasState(id) {
				t.Error("state left behind")
			}
			for _, dir := range []string{"/sys/fs/cgroup/memory/berth/" + id, "/sys/fs/cgroup/pids/berth/" + id, "/sys/fs/cgroup/berth/" + id} {
				if _, err := os.Stat(dir); err == nil {
					t.Errorf("cgroup %s left behind", dir)
				}
			}
		})
	}
}

// TestBuiltinRunsConfigJSONBundle: a bundle with only a config.json (made
// by another tool) runs under the built-in runtime, compiled when run.
func TestBuiltinRunsConfigJSONBundle(t *testing.T) {
	e := newTestEnv(t, BuiltinName)
	e.configJSON = true
	code, out, errOut := e.run(t, e.opts("sh", "-c", "echo hello; grep Seccomp: /proc/self/status"))
	if got := strings.Join(strings.Fields(out), " "); code != 0 || got != "hello Seccomp: 2" {
		t.Errorf("exit %d, output %q (stderr %q); want 0, hello and a seccomp filter", code, out, errOut)
	}
}

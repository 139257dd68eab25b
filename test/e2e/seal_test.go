package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// CVE-2019-5736: a container gets the runtime to run its own binary under
// the container's credentials (a script starting `#!/proc/self/exe`),
// keeps an fd of /proc/<pid>/exe and reopens it for writing once nothing
// runs the file. Each test runs berth from its own copies of the binary,
// so that a failure cannot corrupt the one the other tests use.

// watchScript runs in the attacking container: it waits for a process
// that runs something other than busybox, keeps an fd of its binary,
// waits for it to exit and then tries to write to that binary through
// the fd until a write works (status "wrote") or one is refused for good
// ("refused: ..."), and stays until /t/stop appears. Nothing in the loop
// that waits for the process forks.
const watchScript = `me=/proc/$$/exe
found=
while [ -z "$found" ] && ! [ -e /t/stop ]; do
  for d in /proc/[0-9]*; do
    if [ -e $d/exe ] && ! [ $d/exe -ef $me ]; then
      exec 3< $d/exe
      found=$d
      echo "opened $d" > /t/status
      break
    fi
  done
done
[ -n "$found" ] || exit 0
while [ -e $found/exe ]; do :; done
while ! [ -e /t/stop ]; do
  if { echo pwned > /proc/self/fd/3; } 2>/t/err; then echo wrote > /t/status; break; fi
  if grep -q -e 'Read-only' -e 'not permitted' /t/err; then echo "refused: $(cat /t/err)" > /t/status; break; fi
  usleep 20000
done
while ! [ -e /t/stop ]; do usleep 50000; done
`

// berthCopy copies the berth binary to dir/berth, with the start-path
// binary (which the init and exec helpers run from) beside it.
func berthCopy(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"berth", "berth-shim"} {
		raw, err := os.ReadFile(filepath.Join(filepath.Dir(berthBin), name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), raw, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "berth")
}

// fileSum sums the berth binary at path and the berth-shim beside it.
func fileSum(t *testing.T, path string) [2][sha256.Size]byte {
	t.Helper()
	var out [2][sha256.Size]byte
	for i, name := range []string{path, filepath.Join(filepath.Dir(path), "berth-shim")} {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = sha256.Sum256(raw)
	}
	return out
}

// runBin runs berth from bin against e's root.
func (e *env) runBin(bin string, args ...string) result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--root", e.root, "--runroot", e.runroot}, args...)...)
	cmd.Env = append(os.Environ(), "BERTH_ROOT=", "BERTH_RUNROOT=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("berth %v: %v", args, err)
	}
	return r
}

// attackDir is the directory shared with the attacking container as /t:
// the script to have berth run, the watcher and its status.
func attackDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "t")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"script": "#!/proc/self/exe\n", "watch.sh": watchScript} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The watcher stops when the test ends, whatever happened.
	t.Cleanup(func() { os.WriteFile(filepath.Join(dir, "stop"), nil, 0o644) })
	return dir
}

func readStatus(dir string) string {
	raw, _ := os.ReadFile(filepath.Join(dir, "status"))
	return strings.TrimSpace(string(raw))
}

func TestExecCannotOverwriteBerth(t *testing.T) {
	for _, tc := range []struct {
		name string
		// upgraded: exec runs from a second copy of the binary, as after
		// an upgrade, so nothing else keeps that file busy.
		upgraded bool
		// killMonitor: the container's monitor, which keeps the binary
		// the container was started from busy, is killed.
		killMonitor bool
	}{
		{"exec from an upgraded binary", true, false},
		{"monitor killed", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			want := fileSum(t, berthBin)
			started := berthCopy(t, filepath.Join(t.TempDir(), "a"))
			execer := started
			if tc.upgraded {
				execer = berthCopy(t, filepath.Join(t.TempDir(), "b"))
			}
			dir := attackDir(t)
			name := fmt.Sprintf("seal-%d", time.Now().UnixNano())
			if r := e.runBin(started, "run", "-d", "--name", name, "--network", "none", "-v", dir+":/t", "busybox", "sh", "/t/watch.sh"); r.code != 0 {
				t.Fatalf("run: %s", r)
			}
			// The container has to catch a process that lives a few
			// milliseconds; give it a few chances.
			// The first verdict seen is kept: the container rewrites its
			// status file, and a read in the middle of that sees it empty.
			refused, caught := false, ""
			for try := 0; try < 10 && caught == "" && !refused; try++ {
				r := e.runBin(execer, "exec", name, "/t/script")
				// runc refuses to run the interpreter /proc/self/exe at all.
				if refused = strings.Contains(r.stderr, "no such file or directory"); refused {
					t.Logf("the runtime did not run the script: %s", r)
				}
				deadline := time.Now().Add(2 * time.Second)
				for caught = readStatus(dir); caught == "" && time.Now().Before(deadline); caught = readStatus(dir) {
					time.Sleep(20 * time.Millisecond)
				}
			}
			if caught == "" && !refused {
				t.Fatal("the container never got hold of the binary exec ran in it: the test proves nothing")
			}
			if tc.killMonitor {
				if err := unix.Kill(monitorPid(t, e, name), unix.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
			eventually(t, 20*time.Second, "the container's verdict", func() bool {
				s := readStatus(dir)
				return s == "wrote" || strings.HasPrefix(s, "refused") || (s == "" && refused)
			})
			if s := readStatus(dir); s == "wrote" {
				t.Errorf("the container wrote to the binary that exec ran in it")
			} else {
				t.Logf("container: %s", s)
			}
			bins := []string{started}
			if execer != started {
				bins = append(bins, execer)
			}
			for _, bin := range bins {
				if fileSum(t, bin) != want {
					t.Errorf("%s was changed from a container", bin)
				}
			}
		})
	}
}

// TestRunEntrypointCannotOverwriteBerth: a container's entrypoint
// starting `#!/proc/self/exe` runs the binary the container's init ran
// from as its PID 1; nothing that has it (the host stands in for a
// process sharing the container's pid namespace) can write to it, even
// once its monitor is gone.
func TestRunEntrypointCannotOverwriteBerth(t *testing.T) {
	e := newEnv(t)
	want := fileSum(t, berthBin)
	bin := berthCopy(t, t.TempDir())
	dir := attackDir(t)
	name := fmt.Sprintf("seal-ep-%d", time.Now().UnixNano())
	// A tiny CPU quota makes the binary's start-up, and so PID 1's life
	// as that binary, last long enough to catch from the host.
	if r := e.runBin(bin, "run", "-d", "--name", name, "--network", "none", "--cpus", "0.01", "-v", dir+":/t", "--entrypoint", "/t/script", "busybox"); r.code != 0 {
		t.Fatalf("run: %s", r)
	}
	pid := e.inspect(name, "{{.State.Pid}}")
	exe, err := os.Open("/proc/" + pid + "/exe")
	if err != nil {
		// runc refuses to run the interpreter /proc/self/exe at all.
		if logs := e.run("logs", name); strings.Contains(logs.stderr+logs.stdout, "no such file or directory") {
			t.Logf("the runtime did not run the entrypoint: %s", logs)
			if fileSum(t, bin) != want {
				t.Errorf("%s was changed", bin)
			}
			return
		}
		t.Fatalf("PID 1 (%s) exited before the test could look at it: %v", pid, err)
	}
	defer exe.Close()
	target, _ := os.Readlink("/proc/" + pid + "/exe")
	t.Logf("PID 1 runs %s", target)
	if target == "/bin/busybox" {
		t.Fatal("PID 1 runs busybox, not the runtime's binary: the test proves nothing")
	}
	if mon := monitorOf(e, name); mon > 0 {
		unix.Kill(mon, unix.SIGKILL)
	}
	// While PID 1 runs it, the file is merely busy: it is held for good
	// if it is on a read-only mount or sealed (runc's own copy can stay
	// busy for long under the CPU quota); else wait until it is free,
	// when it must still refuse writers.
	first := make([]byte, 1)
	if _, err := exe.ReadAt(first, 0); err != nil {
		t.Fatal(err)
	}
	fdPath := "/proc/self/fd/" + strconv.Itoa(int(exe.Fd()))
	deadline := time.Now().Add(30 * time.Second)
	for {
		w, err := os.OpenFile(fdPath, os.O_WRONLY, 0)
		if err == nil {
			// Rewrite the byte that is there: a write that works proves
			// the point without harming the file.
			_, werr := w.WriteAt(first, 0)
			w.Close()
			if werr == nil {
				t.Fatalf("the binary PID 1 ran (%s) was opened and written through its fd", target)
			}
			t.Logf("write refused: %v", werr)
			break
		}
		if !errors.Is(err, syscall.ETXTBSY) {
			t.Logf("open for writing refused: %v", err)
			break
		}
		if why := unwritable(exe); why != "" {
			t.Logf("busy, and %s", why)
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the binary stayed busy: PID 1 never exited")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if fileSum(t, bin) != want {
		t.Errorf("%s was changed", bin)
	}
}

// unwritable says why no one can write to f through it ("" if nothing
// stops it): it is on a read-only mount, or a memfd sealed for writes.
func unwritable(f *os.File) string {
	var sfs unix.Statfs_t
	if unix.Fstatfs(int(f.Fd()), &sfs) == nil && sfs.Flags&unix.ST_RDONLY != 0 {
		return "on a read-only mount"
	}
	if seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0); err == nil && seals&unix.F_SEAL_WRITE != 0 {
		return "sealed against writes"
	}
	return ""
}

// monitorOf returns the pid of the monitor of container name, or 0.
func monitorOf(e *env, name string) int {
	id := e.inspect(name, "{{.Id}}")
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		raw, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if len(args) > 1 && args[1] == "_monitor" && args[len(args)-1] == id && strings.Contains(string(raw), e.root) {
			pid, _ := strconv.Atoi(d.Name())
			return pid
		}
	}
	return 0
}

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/testutil"
)

// The built-in runtime with runc's command line (berth called as
// berth-runc), driven as containerd's shim and the OCI validation suite
// drive runc, side by side with runc itself.

// berthRuncLink links the test's berth binary as berth-runc in a
// temporary directory and returns the link.
// ociStateRoot is a --root for one test. The built-in runtime keeps a
// read-only mount of its binary there (exe:ro), detached when the test
// ends so that the directory can go.
func ociStateRoot(t *testing.T) string {
	root := t.TempDir()
	t.Cleanup(func() {
		ents, _ := os.ReadDir(filepath.Join(root, "exe:ro"))
		for _, e := range ents {
			unix.Unmount(filepath.Join(root, "exe:ro", e.Name()), unix.MNT_DETACH)
		}
	})
	return root
}

func berthRuncLink(t *testing.T) string {
	t.Helper()
	link := filepath.Join(t.TempDir(), "berth-runc")
	if err := os.Symlink(berthBin, link); err != nil {
		t.Fatal(err)
	}
	return link
}

// ociRuntime is one runc-compatible binary with its own state root.
type ociRuntime struct {
	t    *testing.T
	bin  string
	root string
}

func (r *ociRuntime) run(args ...string) result {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.bin, append([]string{"--root", r.root}, args...)...)
	// Files, not pipes: a container's init inherits create's stdio and
	// would hold a pipe open for as long as it runs.
	out, errf := r.tempFile(), r.tempFile()
	defer out.Close()
	defer errf.Close()
	cmd.Stdout, cmd.Stderr = out, errf
	err := cmd.Run()
	res := result{stdout: readAll(r.t, out), stderr: readAll(r.t, errf)}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	} else if err != nil {
		r.t.Fatalf("%s %v: %v", r.bin, args, err)
	}
	return res
}

func (r *ociRuntime) tempFile() *os.File {
	f, err := os.CreateTemp(r.t.TempDir(), "out")
	if err != nil {
		r.t.Fatal(err)
	}
	return f
}

func readAll(t *testing.T, f *os.File) string {
	raw, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func (r *ociRuntime) must(args ...string) string {
	r.t.Helper()
	res := r.run(args...)
	if res.code != 0 {
		r.t.Fatalf("%s %s: %s", filepath.Base(r.bin), strings.Join(args, " "), res)
	}
	return res.stdout
}

type ociState struct {
	Version string `json:"ociVersion"`
	ID      string `json:"id"`
	Pid     int    `json:"pid"`
	Status  string `json:"status"`
	Bundle  string `json:"bundle"`
	Rootfs  string `json:"rootfs"`
	Created string `json:"created"`
}

func (r *ociRuntime) state(id string) ociState {
	r.t.Helper()
	var st ociState
	out := r.must("state", id)
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		r.t.Fatalf("state %s: %v in %q", id, err, out)
	}
	return st
}

var ociIDs atomic.Int64

// ociBundle writes a config.json bundle over a fresh busybox rootfs that
// runs args.
func ociBundle(t *testing.T, args ...string) string {
	t.Helper()
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	testutil.BusyboxRootfs(t, rootfs)
	spec, err := runtime.Generate(runtime.SpecOptions{Hostname: "oci", Rootfs: rootfs, Args: args, NetworkMode: "none"})
	if err != nil {
		t.Fatal(err)
	}
	if err := runtime.WriteBundle(bundle, spec); err != nil {
		t.Fatal(err)
	}
	return bundle
}

// TestOCIRuntimeCommandLine drives create, state, start, exec, ps, pause,
// resume, kill and delete on runc and on berth-runc, and expects the same
// behaviour: create leaves the command not started, start runs it.
func TestOCIRuntimeCommandLine(t *testing.T) {
	testutil.RequiresRoot(t)
	runtimes := map[string]string{"runc": testutil.RequiresBinary(t, "runc"), "berth-runc": berthRuncLink(t)}
	for name, bin := range runtimes {
		t.Run(name, func(t *testing.T) {
			r := &ociRuntime{t: t, bin: bin, root: ociStateRoot(t)}
			id := fmt.Sprintf("oci-cli-%d-%d", os.Getpid(), ociIDs.Add(1))
			t.Cleanup(func() { r.run("delete", "--force", id) })
			bundle := ociBundle(t, "sh", "-c", "echo started > /started; exec sleep 1000")
			canary := filepath.Join(bundle, "rootfs", "started")
			pidFile := filepath.Join(t.TempDir(), "pid")

			r.must("create", "--bundle", bundle, "--pid-file", pidFile, id)
			st := r.state(id)
			raw, _ := os.ReadFile(pidFile)
			pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
			if st.Status != "created" || st.ID != id || st.Pid != pid || pid == 0 || st.Bundle != bundle || st.Rootfs != filepath.Join(bundle, "rootfs") || st.Created == "" || st.Version == "" {
				t.Fatalf("state after create = %+v (pid file %d)", st, pid)
			}
			if _, err := os.Stat(canary); err == nil {
				t.Fatal("the command ran before start")
			}
			if res := r.run("create", "--bundle", bundle, id); res.code != 1 {
				t.Errorf("second create: %s; want exit 1", res)
			}

			r.must("start", id)
			eventually(t, 10*time.Second, "the command to run", func() bool { _, err := os.Stat(canary); return err == nil })
			if st := r.state(id); st.Status != "running" || st.Pid != pid {
				t.Errorf("state after start = %+v", st)
			}
			if res := r.run("start", id); res.code != 1 || res.stderr == "" {
				t.Errorf("second start: %s; want exit 1 and an error", res)
			}
			if out := r.must("exec", id, "cat", "/started"); out != "started\n" {
				t.Errorf("exec output %q", out)
			}
			if res := r.run("exec", id, "sh", "-c", "exit 3"); res.code != 3 {
				t.Errorf("exec exit: %s; want 3", res)
			}
			var pids []int
			if err := json.Unmarshal([]byte(r.must("ps", "--format", "json", id)), &pids); err != nil || len(pids) != 1 || pids[0] != pid {
				t.Errorf("ps = %v, %v; want [%d]", pids, err, pid)
			}
			r.must("pause", id)
			if st := r.state(id); st.Status != "paused" {
				t.Errorf("state after pause = %+v", st)
			}
			r.must("resume", id)
			if !strings.Contains(r.must("list"), id) {
				t.Error("list does not show the container")
			}
			if res := r.run("delete", id); res.code != 1 {
				t.Errorf("delete of a running container: %s; want exit 1", res)
			}
			r.must("kill", id, "KILL")
			eventually(t, 10*time.Second, "the container to stop", func() bool { return r.state(id).Status == "stopped" })
			if res := r.run("kill", id, "9"); res.code != 1 {
				t.Errorf("kill of a stopped container: %s; want exit 1", res)
			}
			r.must("delete", id)
			if res := r.run("state", id); res.code != 1 || !strings.Contains(res.stderr, "does not exist") {
				t.Errorf("state after delete: %s; want exit 1, does not exist", res)
			}
			if unix.Kill(pid, 0) == nil {
				if start, err := runtime.ProcessStartTime(pid); err == nil && start > 0 {
					t.Errorf("init %d still runs after delete", pid)
				}
			}
		})
	}
}

// TestOCIRuntimeRunForeground: run without --detach waits for the
// container, exits with its status and removes it; a created container
// is deleted (killed) without --force.
func TestOCIRuntimeRunForeground(t *testing.T) {
	testutil.RequiresRoot(t)
	r := &ociRuntime{t: t, bin: berthRuncLink(t), root: ociStateRoot(t)}
	id := fmt.Sprintf("oci-run-%d-%d", os.Getpid(), ociIDs.Add(1))
	t.Cleanup(func() { r.run("delete", "--force", id) })
	res := r.run("run", "--bundle", ociBundle(t, "sh", "-c", "echo out; echo err >&2; exit 5"), id)
	if res.code != 5 || res.stdout != "out\n" || res.stderr != "err\n" {
		t.Errorf("run: %s; want exit 5, out, err", res)
	}
	if res := r.run("state", id); res.code != 1 {
		t.Errorf("state after run: %s; want the container gone", res)
	}
	// A command that is over before run looks at it is still reaped, with
	// its own status.
	quick := ociBundle(t, "true")
	for i := range 10 {
		if res := r.run("run", "--bundle", quick, fmt.Sprintf("%s-q%d", id, i)); res.code != 0 {
			t.Fatalf("run of true, round %d: %s", i, res)
		}
	}
	r.must("create", "--bundle", ociBundle(t, "true"), id)
	r.must("delete", id)
	if res := r.run("state", id); res.code != 1 {
		t.Errorf("state after delete of a created container: %s", res)
	}
}

// TestOCIRuntimeUserNamespace: a spec with a user namespace and id maps
// runs under berth-runc as under runc: root in the container is the
// mapped host uid, and exec into such a container is refused rather than
// run outside the namespace.
func TestOCIRuntimeUserNamespace(t *testing.T) {
	testutil.RequiresRoot(t)
	// The init runs as a mapped host uid: the binary, the bundle and the
	// directories above them must be reachable by others.
	for _, dir := range []string{filepath.Dir(berthBin)} {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	runtimes := map[string]string{"runc": testutil.RequiresBinary(t, "runc"), "berth-runc": berthRuncLink(t)}
	for name, bin := range runtimes {
		t.Run(name, func(t *testing.T) {
			if err := os.Chmod(filepath.Dir(bin), 0o755); err != nil {
				t.Fatal(err)
			}
			r := &ociRuntime{t: t, bin: bin, root: ociStateRoot(t)}
			id := fmt.Sprintf("oci-userns-%d-%d", os.Getpid(), ociIDs.Add(1))
			t.Cleanup(func() { r.run("delete", "--force", id) })
			bundle := ociBundle(t, "sh", "-c", "id -u; tr -s ' ' < /proc/self/uid_map; exec sleep 1000")
			for _, dir := range []string{filepath.Dir(bundle), bundle} {
				if err := os.Chmod(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			spec, err := runtime.ReadSpec(bundle)
			if err != nil {
				t.Fatal(err)
			}
			spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
			spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
			spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
			if err := runtime.WriteBundle(bundle, spec); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(bundle, "out")
			f, err := os.Create(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cmd := exec.Command(bin, "--root", r.root, "create", "--bundle", bundle, id)
			cmd.Stdout, cmd.Stderr = f, f
			if err := cmd.Run(); err != nil {
				raw, _ := os.ReadFile(out)
				t.Fatalf("create: %v: %s", err, raw)
			}
			r.must("start", id)
			eventually(t, 10*time.Second, "the container's output", func() bool {
				raw, _ := os.ReadFile(out)
				return strings.Count(string(raw), "\n") >= 2
			})
			raw, _ := os.ReadFile(out)
			if got := strings.Fields(string(raw)); len(got) < 4 || got[0] != "0" || got[1] != "0" || got[2] != "100000" || got[3] != "65536" {
				t.Errorf("in the container: %q; want uid 0 mapped from 100000 (65536)", raw)
			}
			if name == "berth-runc" {
				if res := r.run("exec", id, "true"); res.code == 0 {
					t.Errorf("exec into a user namespace container ran outside it: %s", res)
				}
			}
			r.must("kill", id, "KILL")
			eventually(t, 10*time.Second, "the container to stop", func() bool { return r.state(id).Status == "stopped" })
			r.must("delete", id)
		})
	}
}

// TestBerthRuntimeSubcommand: `berth runtime ...` is the same command
// line as berth-runc.
func TestBerthRuntimeSubcommand(t *testing.T) {
	testutil.RequiresRoot(t)
	root := ociStateRoot(t)
	out, err := exec.Command(berthBin, "runtime", "--root", root, "features").Output()
	if err != nil || !strings.Contains(string(out), `"ociVersionMin"`) || !strings.Contains(string(out), `"startContainer"`) {
		t.Errorf("berth runtime features: %v, %s", err, out)
	}
	cmd := exec.Command(berthBin, "runtime", "--root", root, "state", "nope")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || cmd.ProcessState.ExitCode() != 1 || !strings.Contains(stderr.String(), "container does not exist") {
		t.Errorf("berth runtime state of an unknown container: %v, %q; want exit 1, runc's message", err, stderr.String())
	}
}

// statusField is field (e.g. "CapEff") of /proc/<pid>/status.
func statusField(t *testing.T, pid int, field string) string {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return ""
}

// TestOCICreatedInitIsConfined: a created container's init, waiting for
// start, already has the container's capabilities and no_new_privs, as
// runc's does: an exec into the created container (with CAP_SYS_PTRACE,
// say) must not find a process holding the host's capabilities.
func TestOCICreatedInitIsConfined(t *testing.T) {
	testutil.RequiresRoot(t)
	runtimes := map[string]string{"runc": testutil.RequiresBinary(t, "runc"), "berth-runc": berthRuncLink(t)}
	for name, bin := range runtimes {
		t.Run(name, func(t *testing.T) {
			r := &ociRuntime{t: t, bin: bin, root: ociStateRoot(t)}
			id := fmt.Sprintf("oci-confined-%d-%d", os.Getpid(), ociIDs.Add(1))
			t.Cleanup(func() { r.run("delete", "--force", id) })
			bundle := ociBundle(t, "sleep", "1000")
			pidFile := filepath.Join(t.TempDir(), "pid")
			r.must("create", "--bundle", bundle, "--pid-file", pidFile, id)
			raw, _ := os.ReadFile(pidFile)
			pid, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
			created := map[string]string{}
			for _, f := range []string{"CapEff", "CapBnd", "NoNewPrivs"} {
				created[f] = statusField(t, pid, f)
			}
			r.must("start", id)
			eventually(t, 10*time.Second, "the command to run", func() bool {
				l, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
				return strings.HasSuffix(l, "/sleep") || strings.HasSuffix(l, "/busybox")
			})
			for f, v := range created {
				if now := statusField(t, pid, f); now != v {
					t.Errorf("%s of the created init %s, %s once started: it waited less confined than it runs", f, v, now)
				}
			}
		})
	}
}

// TestOCIExecKeepsTheStartedSpec: exec runs with the seccomp filter and
// namespaces the container was started with, not with whatever its
// bundle (which may be writable from inside the container) says later.
func TestOCIExecKeepsTheStartedSpec(t *testing.T) {
	testutil.RequiresRoot(t)
	bin := berthRuncLink(t)
	r := &ociRuntime{t: t, bin: bin, root: ociStateRoot(t)}
	id := fmt.Sprintf("oci-respec-%d-%d", os.Getpid(), ociIDs.Add(1))
	t.Cleanup(func() { r.run("delete", "--force", id) })
	bundle := ociBundle(t, "sleep", "1000")
	r.must("run", "--detach", "--bundle", bundle, id)
	before := r.must("exec", id, "grep", "Seccomp:", "/proc/self/status")
	// The bundle now asks for a user namespace and no seccomp filter.
	spec, err := runtime.ReadSpec(bundle)
	if err != nil {
		t.Fatal(err)
	}
	spec.Linux.Seccomp = nil
	spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	spec.Linux.UIDMappings = []specs.LinuxIDMapping{{HostID: 100000, Size: 65536}}
	spec.Linux.GIDMappings = []specs.LinuxIDMapping{{HostID: 100000, Size: 65536}}
	if err := runtime.WriteBundle(bundle, spec); err != nil {
		t.Fatal(err)
	}
	after := r.must("exec", id, "grep", "Seccomp:", "/proc/self/status")
	if after != before || !strings.Contains(before, "2") {
		t.Errorf("exec's seccomp mode was %q at start, %q after the bundle changed", before, after)
	}
}

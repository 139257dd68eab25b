package container

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/testutil"
)

// fakeEnv is a root whose containers run under the fake runtime.
type fakeEnv struct {
	t       *testing.T
	svc     *Service
	runroot string
}

func newFakeEnv(t *testing.T) *fakeEnv {
	t.Helper()
	testutil.RequiresRoot(t) // overlay mounts of the rootfs, network namespaces
	dir := t.TempDir()
	root, runroot := filepath.Join(dir, "root"), filepath.Join(dir, "run")
	ctx := context.Background()
	svc, images, err := openFakeService(ctx, root, runroot)
	if err != nil {
		t.Fatal(err)
	}
	e := &fakeEnv{t: t, svc: svc, runroot: runroot}
	t.Cleanup(func() { e.cleanup(dir) })
	tar, err := os.Open(testutil.BusyboxTar(t))
	if err != nil {
		t.Fatal(err)
	}
	defer tar.Close()
	if _, err := images.Import(ctx, tar, image.ImportOptions{Reference: "busybox:latest"}); err != nil {
		t.Fatal(err)
	}
	return e
}

// cleanup removes every container (ending monitors and processes) and
// unmounts whatever is left under dir.
func (e *fakeEnv) cleanup(dir string) {
	ctx := context.Background()
	if cs, err := e.svc.List(ctx); err == nil {
		for _, c := range cs {
			e.svc.Remove(ctx, c.ID, RemoveOptions{Force: true, Volumes: true})
		}
	}
	raw, _ := os.ReadFile("/proc/self/mountinfo")
	lines := strings.Split(string(raw), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if f := strings.Fields(lines[i]); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			e.t.Logf("cleanup: unmounting leftover %s", f[4])
			unix.Unmount(f[4], unix.MNT_DETACH)
		}
	}
}

func (e *fakeEnv) create(name string, hc HostConfig, cmd ...string) *Container {
	e.t.Helper()
	c, err := e.svc.Create(context.Background(), CreateOptions{Name: name, Config: Config{Image: "busybox", Cmd: cmd}, HostConfig: hc})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *fakeEnv) get(id string) *Container {
	e.t.Helper()
	c, err := e.svc.Get(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// calls returns the fake runtime's and network's calls for id, as "op"
// or "op extra".
func (e *fakeEnv) calls(id string) []string {
	raw, _ := os.ReadFile(filepath.Join(e.runroot, "fake", "calls"))
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[1] == id {
			out = append(out, strings.Join(append(f[:1], f[2:]...), " "))
		}
	}
	return out
}

func (e *fakeEnv) eventually(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ops(calls []string) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i], _, _ = strings.Cut(c, " ")
	}
	return out
}

func TestLifecycleWithFakeRuntime(t *testing.T) {
	e := newFakeEnv(t)
	ctx := context.Background()
	c := e.create("life", HostConfig{}, "sleep", "100")
	if c.State.Status != "created" || len(e.calls(c.ID)) != 0 {
		t.Fatalf("after create: status %s, runtime calls %v", c.State.Status, e.calls(c.ID))
	}

	// start: the network is attached, in a namespace under the runroot
	// that the spec names, before the runtime runs the container.
	if _, err := e.svc.Start(ctx, c.ID, StartOptions{}); err != nil {
		t.Fatal(err)
	}
	got := e.get(c.ID)
	if !got.State.Running || got.State.Pid == 0 {
		t.Fatalf("after start: %+v", got.State)
	}
	netns := filepath.Join(e.runroot, "netns", c.ID)
	if want := []string{"attach netns=" + netns, "run netns=" + netns}; !slices.Equal(e.calls(c.ID), want) {
		t.Fatalf("start: calls %q, want %q", e.calls(c.ID), want)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(netns, &st); err != nil || st.Type != unix.NSFS_MAGIC {
		t.Fatalf("%s is not a network namespace: %v", netns, err)
	}
	hosts, _ := os.ReadFile(got.HostsPath)
	if !strings.HasSuffix(string(hosts), "10.88.0.2\t"+got.Config.Hostname+"\n") {
		t.Errorf("/etc/hosts does not end with the attached address:\n%s", hosts)
	}

	// stats come from the runtime.
	stats, err := e.svc.Stats(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stats.CPUUsage != fakeStats.CPUUsage || stats.MemoryRaw != fakeStats.MemoryRaw {
		t.Errorf("stats %+v, want the runtime's %+v", stats, fakeStats)
	}

	// stop: SIGTERM through the runtime; the monitor asks for the OOM
	// counter, detaches, deletes and releases the namespace.
	timeout := 5
	if err := e.svc.Stop(ctx, c.ID, &timeout, ""); err != nil {
		t.Fatal(err)
	}
	e.eventually("the monitor to finish", func() bool { return e.get(c.ID).Internal.MonitorPid == 0 })
	got = e.get(c.ID)
	if got.State.Status != "exited" || got.State.ExitCode != 143 {
		t.Errorf("after stop: %s %d, want exited 143", got.State.Status, got.State.ExitCode)
	}
	e.eventually("the runtime delete", func() bool { return slices.Contains(ops(e.calls(c.ID)), "delete") })
	// One detach: the final one (a run that is not restarted keeps its
	// endpoint until the namespace goes with it).
	if want := []string{"attach", "run", "stats", "oom", "detach", "delete"}; !sameMultiset(ops(e.calls(c.ID)), want) {
		t.Errorf("stop: calls %q, want %q in some order", e.calls(c.ID), want)
	}
	if _, err := os.Stat(netns); !os.IsNotExist(err) {
		t.Errorf("network namespace kept after stop: %v", err)
	}

	// restart of a stopped container starts it again.
	before := len(e.calls(c.ID))
	if err := e.svc.Restart(ctx, c.ID, &timeout, ""); err != nil {
		t.Fatal(err)
	}
	if !e.get(c.ID).State.Running {
		t.Fatal("not running after restart")
	}
	if after := ops(e.calls(c.ID)[before:]); !slices.Contains(after, "attach") || !slices.Contains(after, "run") {
		t.Errorf("restart: calls %q", after)
	}

	// remove -f of a running container.
	if err := e.svc.Remove(ctx, c.ID, RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Get(ctx, c.ID); err == nil {
		t.Error("record left after rm -f")
	}
	if _, err := os.Stat(netns); !os.IsNotExist(err) {
		t.Errorf("network namespace left after rm -f: %v", err)
	}
	if calls := ops(e.calls(c.ID)); calls[len(calls)-1] != "detach" && !slices.Contains(calls[before:], "detach") {
		t.Errorf("rm -f: no detach in %q", calls)
	}
}

// TestRestartPolicyWithFakeRuntime: each restart the monitor makes
// attaches the network again, in the same namespace.
func TestRestartPolicyWithFakeRuntime(t *testing.T) {
	e := newFakeEnv(t)
	c := e.create("flaky", HostConfig{RestartPolicy: RestartPolicy{Name: "on-failure", MaximumRetryCount: 2}}, "sh", "-c", "exit 3")
	if _, err := e.svc.Start(context.Background(), c.ID, StartOptions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually("two restarts", func() bool {
		got := e.get(c.ID)
		return got.State.Status == "exited" && got.RestartCount == 2 && got.Internal.MonitorPid == 0
	})
	if got := e.get(c.ID); got.State.ExitCode != 3 {
		t.Errorf("exit code %d, want 3", got.State.ExitCode)
	}
	var runs, attaches []string
	for _, call := range e.calls(c.ID) {
		switch op, extra, _ := strings.Cut(call, " "); op {
		case "run":
			runs = append(runs, extra)
		case "attach":
			attaches = append(attaches, extra)
		}
	}
	if len(runs) != 3 || len(attaches) != 3 {
		t.Fatalf("calls %q: want 3 attaches and 3 runs", e.calls(c.ID))
	}
	for _, r := range runs {
		if r != runs[0] {
			t.Errorf("runs in different network namespaces: %q", runs)
		}
	}
}

// TestUpdateWithFakeRuntime: a live update goes through the runtime
// before the record; a refused one changes nothing.
func TestUpdateWithFakeRuntime(t *testing.T) {
	e := newFakeEnv(t)
	ctx := context.Background()
	c := e.create("up", HostConfig{Resources: Resources{Memory: 64 << 20}}, "sleep", "100")
	if _, err := e.svc.Start(ctx, c.ID, StartOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Update(ctx, c.ID, UpdateOptions{Resources: Resources{Memory: 32 << 20}}); err != nil {
		t.Fatal(err)
	}
	st, err := (&fakeRuntime{dir: filepath.Join(e.runroot, "fake")}).load(c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if m := st.Resources.Memory; m == nil || m.Limit == nil || *m.Limit != 32<<20 {
		t.Errorf("runtime got memory %+v, want a 32 MiB limit", m)
	}
	if got := e.get(c.ID).HostConfig; got.Memory != 32<<20 || got.MemorySwap != 128<<20 {
		t.Errorf("record: memory %d swap %d", got.Memory, got.MemorySwap)
	}
	_, err = e.svc.Update(ctx, c.ID, UpdateOptions{Resources: Resources{Memory: 8 << 20}})
	if err == nil || !strings.Contains(err.Error(), "Cannot update container "+c.ID) {
		t.Fatalf("update below the runtime's minimum: %v", err)
	}
	if got := e.get(c.ID).HostConfig.Memory; got != 32<<20 {
		t.Errorf("a refused update changed the record: memory %d", got)
	}
	// A restart policy set by update is the one the monitor applies.
	policy := RestartPolicy{Name: "always"}
	if _, err := e.svc.Update(ctx, c.ID, UpdateOptions{RestartPolicy: &policy}); err != nil {
		t.Fatal(err)
	}
	e.svc.runtimeFor(c).Kill(ctx, c.ID, unix.SIGKILL, true)
	e.eventually("a restart under the updated policy", func() bool {
		got := e.get(c.ID)
		return got.RestartCount >= 1 && got.State.Running
	})
}

// sameMultiset reports whether a and b hold the same strings as many
// times each.
func sameMultiset(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

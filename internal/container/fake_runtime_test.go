package container

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-dev/berth/internal/content"
	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/metadata"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/snapshot"
)

// fakeRuntime runs a container's command as a plain host process (no
// namespaces, no root change) and keeps its state in files under dir, so
// that the test process and the monitor processes it starts (this test
// binary, see TestMain) see the same containers. Every call is appended
// to dir/calls.
type fakeRuntime struct{ dir string }

type fakeState struct {
	Pid       int                   `json:"pid"`
	Bundle    string                `json:"bundle"`
	Resources *specs.LinuxResources `json:"resources,omitempty"`
	Netns     string                `json:"netns,omitempty"`
	Stats     runtime.CgroupStats   `json:"stats"`
}

// fakeStats is what the fake reports for every container.
var fakeStats = runtime.CgroupStats{CPUUsage: 4242, MemoryRaw: 1 << 20, MemoryLimit: 64 << 20, MemoryStat: map[string]uint64{"inactive_file": 0}, PIDs: 1}

// fakeMinMemory is the smallest memory limit the fake's Update accepts,
// standing in for a kernel that cannot shrink a cgroup below its usage.
const fakeMinMemory = 16 << 20

func (f *fakeRuntime) record(op, id string, extra ...string) {
	line := strings.Join(append([]string{op, id}, extra...), " ") + "\n"
	fh, err := os.OpenFile(filepath.Join(f.dir, "calls"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err == nil {
		fh.WriteString(line)
		fh.Close()
	}
}

func (f *fakeRuntime) statePath(id string) string { return filepath.Join(f.dir, id+".json") }

func (f *fakeRuntime) load(id string) (*fakeState, error) {
	raw, err := os.ReadFile(f.statePath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errdefs.NotFound("fake runtime: no container %s", id)
	}
	if err != nil {
		return nil, err
	}
	var st fakeState
	return &st, json.Unmarshal(raw, &st)
}

func (f *fakeRuntime) save(id string, st *fakeState) error {
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return os.WriteFile(f.statePath(id), raw, 0o600)
}

func (f *fakeRuntime) WriteBundle(dir string, spec *specs.Spec) error {
	return runtime.WriteBundle(dir, spec)
}

func (f *fakeRuntime) Run(ctx context.Context, id, bundle, pidFile string, io runtime.IO) error {
	// A test holds the runs that start while dir/hold-run exists; it
	// learns of each from dir/held-<id>.
	if hold := filepath.Join(f.dir, "hold-run"); fileExists(hold) {
		os.WriteFile(filepath.Join(f.dir, "held-"+id), nil, 0o600)
		for deadline := time.Now().Add(20 * time.Second); fileExists(hold) && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
	}
	raw, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return err
	}
	var spec specs.Spec
	if err := json.Unmarshal(raw, &spec); err != nil {
		return err
	}
	st := &fakeState{Bundle: bundle, Stats: fakeStats}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			st.Netns = ns.Path
		}
	}
	args := spec.Process.Args
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = spec.Process.Env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = io.Stdin, io.Stdout, io.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return &errdefs.ExitStatus{Code: 127, Msg: err.Error()}
	}
	st.Pid = cmd.Process.Pid
	f.record("run", id, "netns="+st.Netns)
	if err := f.save(id, st); err != nil {
		return err
	}
	return os.WriteFile(pidFile, []byte(strconv.Itoa(st.Pid)), 0o600)
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func (f *fakeRuntime) alive(st *fakeState) bool {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", st.Pid))
	if err != nil {
		return false
	}
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z"
}

func (f *fakeRuntime) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	st, err := f.load(id)
	if err != nil {
		return err
	}
	f.record("kill", id, strconv.Itoa(int(sig)))
	if all {
		return syscall.Kill(-st.Pid, sig)
	}
	return syscall.Kill(st.Pid, sig)
}

func (f *fakeRuntime) Delete(ctx context.Context, id string, force bool) error {
	st, err := f.load(id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	f.record("delete", id)
	if force && f.alive(st) {
		syscall.Kill(-st.Pid, syscall.SIGKILL)
	}
	return os.Remove(f.statePath(id))
}

func (f *fakeRuntime) State(ctx context.Context, id string) (*specs.State, error) {
	st, err := f.load(id)
	if err != nil {
		return nil, err
	}
	status := specs.StateStopped
	if f.alive(st) {
		status = specs.StateRunning
	}
	return &specs.State{ID: id, Pid: st.Pid, Bundle: st.Bundle, Status: status}, nil
}

func (f *fakeRuntime) HasState(id string) bool {
	_, err := os.Stat(f.statePath(id))
	return err == nil
}

func (f *fakeRuntime) Pause(ctx context.Context, id string) error {
	return f.Kill(ctx, id, syscall.SIGSTOP, true)
}

func (f *fakeRuntime) Resume(ctx context.Context, id string) error {
	return f.Kill(ctx, id, syscall.SIGCONT, true)
}

func (f *fakeRuntime) Ps(ctx context.Context, id string) ([]int, error) {
	st, err := f.load(id)
	if err != nil {
		return nil, err
	}
	return []int{st.Pid}, nil
}

func (f *fakeRuntime) Exec(ctx context.Context, id string, proc *specs.Process, pidFile string, io runtime.IO, detach bool) (*exec.Cmd, error) {
	return nil, errdefs.NotImplemented("fake runtime: no exec")
}

func (f *fakeRuntime) Stats(ctx context.Context, id string) (*runtime.CgroupStats, error) {
	st, err := f.load(id)
	if err != nil {
		return nil, err
	}
	f.record("stats", id)
	return &st.Stats, nil
}

func (f *fakeRuntime) OOMKilled(ctx context.Context, id string) (bool, error) {
	if _, err := f.load(id); err != nil {
		return false, err
	}
	f.record("oom", id)
	return false, nil
}

func (f *fakeRuntime) Update(ctx context.Context, id string, res *specs.LinuxResources) error {
	st, err := f.load(id)
	if err != nil {
		return err
	}
	if res.Memory != nil && res.Memory.Limit != nil && *res.Memory.Limit < fakeMinMemory {
		return errors.New("fake runtime: memory limit below usage: device or resource busy")
	}
	f.record("update", id)
	st.Resources = res
	return f.save(id, st)
}

// recordingNetwork is a NetworkAttacher that logs its calls to the fake
// runtime's call log, so that their order with the runtime's is seen.
type recordingNetwork struct{ f *fakeRuntime }

func (n recordingNetwork) Attach(ctx context.Context, ep *Endpoint) (*NetworkAttachment, error) {
	n.f.record("attach", ep.ID, "netns="+ep.NetNSPath)
	return &NetworkAttachment{Addresses: []string{"10.88.0.2"}}, nil
}

func (n recordingNetwork) Detach(ctx context.Context, ep *Endpoint) error {
	n.f.record("detach", ep.ID)
	return nil
}

// fakeOptions are the service options of a test root whose containers
// run under the fake runtime, in this process and in its monitors.
func fakeOptions(root, runroot string) Options {
	f := &fakeRuntime{dir: filepath.Join(runroot, "fake")}
	os.MkdirAll(f.dir, 0o700)
	self, _ := os.Executable()
	return Options{
		Root: root, RunRoot: runroot, Runtime: "fake", Self: self,
		NewRuntime: func(string) runtime.Runtime { return f },
		Network:    recordingNetwork{f},
	}
}

// openFakeService opens the stores under root as berth's engine does.
func openFakeService(ctx context.Context, root, runroot string) (*Service, *image.Store, error) {
	for _, d := range []string{root, runroot} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, nil, err
		}
	}
	meta, err := metadata.Open(ctx, root)
	if err != nil {
		return nil, nil, err
	}
	cs, err := content.New(filepath.Join(root, "content"))
	if err != nil {
		return nil, nil, err
	}
	snaps, err := snapshot.New(root)
	if err != nil {
		return nil, nil, err
	}
	images := image.NewStore(meta, cs, snaps, Users{})
	return NewService(fakeOptions(root, runroot), meta, images, nil), images, nil
}

// TestMain lets this test binary be the monitor of the containers the
// tests start (Service.Start runs Options.Self _monitor ...).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "_monitor" {
		os.Exit(fakeMonitorMain(os.Args[2:]))
	}
	os.Exit(m.Run())
}

func fakeMonitorMain(args []string) int {
	fs := flag.NewFlagSet("_monitor", flag.ContinueOnError)
	root := fs.String("root", "", "")
	runroot := fs.String("runroot", "", "")
	fs.String("runtime", "", "")
	fs.Bool("debug", false, "")
	await := fs.Bool("await", false, "")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		return 2
	}
	ctx := context.Background()
	svc, _, err := openFakeService(ctx, *root, *runroot)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake monitor:", err)
		return 1
	}
	if err := svc.RunMonitor(ctx, fs.Arg(0), os.NewFile(3, "attach"), *await); err != nil {
		return 1
	}
	return 0
}

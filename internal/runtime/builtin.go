package runtime

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime/cgroups"
)

// Builtin is berth's own OCI runtime. It runs the specs berth generates
// without an external runtime binary: the caller (the container's monitor)
// forks `berth _init` straight into the new namespaces, moves it into the
// container's cgroup, and the init sets up the root filesystem, drops
// privileges, loads the seccomp filter and executes the container's
// command. That is one short-lived process instead of runc's three (runc,
// its re-executed init, and the libseccomp compile in it), which is most of
// the start-up time of a container.
//
// State lives in Root/<id>/state.json: the init's pid and start time (so a
// recycled pid is never mistaken for the container), the bundle and the
// cgroup. Kill, Pause, Ps and Delete work from that file and the cgroup, so
// any berth process can act on a container another one started.
type Builtin struct {
	// Root is the state directory, e.g. <runroot>/runtime/berth.
	Root string
	// Self is the berth binary, whose read-only copy (sealed.go) runs
	// as the init and exec helpers; "" is /proc/self/exe.
	Self string
}

// builtinState is what Root/<id>/state.json holds.
type builtinState struct {
	ID          string    `json:"id"`
	Pid         int       `json:"pid"`
	PidStart    uint64    `json:"pidStart"`
	Bundle      string    `json:"bundle"`
	CgroupsPath string    `json:"cgroupsPath"`
	Created     time.Time `json:"created"`
	// Rootfs, Annotations and Hooks are kept for the OCI command line
	// (state, poststart and poststop hooks): berth's engine sets none of
	// them, so they cost nothing on its path.
	Rootfs      string            `json:"rootfs,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Hooks       *specs.Hooks      `json:"hooks,omitempty"`
}

// initReport is what an init or exec helper writes on its report pipe
// when it fails before executing the user's command. Code is 127 or 126
// for a command that cannot be found or run, else 0.
type initReport struct {
	Code int    `json:"code,omitempty"`
	Msg  string `json:"msg"`
	Pid  int    `json:"pid,omitempty"`
	// Created is set by an init started by Create once it waits for
	// Start.
	Created bool `json:"created,omitempty"`
}

// cgroupManager returns the manager of the cgroup at path, learning the
// host's cgroup layout through a cache in the state directory.
func (b *Builtin) cgroupManager(path string) (*cgroups.Manager, error) {
	h, err := cgroups.LoadHost(filepath.Join(b.Root, "cgroup-layout"))
	if err != nil {
		return nil, err
	}
	return h.Manager(path)
}

func (b *Builtin) self() string {
	if b.Self == "" {
		return "/proc/self/exe"
	}
	return b.Self
}

func (b *Builtin) stateDir(id string) string { return filepath.Join(b.Root, id) }

// HasState reports whether state for id exists.
func (b *Builtin) HasState(id string) bool { return exists(b.stateDir(id)) }

func (b *Builtin) loadState(id string) (*builtinState, error) {
	raw, err := os.ReadFile(filepath.Join(b.stateDir(id), "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errdefs.NotFound("berth runtime: container %s does not exist", id)
	}
	if err != nil {
		return nil, err
	}
	var st builtinState
	if err := json.Unmarshal(raw, &st); err != nil {
		return nil, fmt.Errorf("berth runtime: state of %s unreadable: %w", id, err)
	}
	return &st, nil
}

func (b *Builtin) saveState(st *builtinState) error {
	dir := b.stateDir(st.ID)
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ".state.json.tmp")
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "state.json"))
}

// alive reports whether the state's init still runs (as the same process:
// same pid and start time; a zombie counts as gone).
func (st *builtinState) alive() bool {
	start, err := ProcessStartTime(st.Pid)
	return err == nil && start == st.PidStart
}

// cloneFlags are the namespaces the init is created in; the ones with a
// path are joined by the init itself, and the cgroup namespace is made by
// the init once it is in its cgroup, so that the namespace is rooted there.
func cloneFlags(namespaces []specs.LinuxNamespace) (uintptr, error) {
	var flags uintptr
	for _, ns := range namespaces {
		if ns.Path != "" || ns.Type == specs.CgroupNamespace {
			continue
		}
		f, ok := namespaceFlags[ns.Type]
		if !ok {
			return 0, errdefs.InvalidArgument("the berth runtime does not support %s namespaces; use --runtime runc", ns.Type)
		}
		flags |= f
	}
	return flags, nil
}

var namespaceFlags = map[specs.LinuxNamespaceType]uintptr{
	specs.MountNamespace:   unix.CLONE_NEWNS,
	specs.PIDNamespace:     unix.CLONE_NEWPID,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.CgroupNamespace:  unix.CLONE_NEWCGROUP,
	// Only created (never joined by path: compileSpec refuses that), with
	// the uid and gid maps written by launch.
	specs.UserNamespace: unix.CLONE_NEWUSER,
}

// Run creates and starts container id.
func (b *Builtin) Run(ctx context.Context, id, bundle, pidFile string, io IO) error {
	return b.launch(ctx, id, bundle, pidFile, io, false, nil)
}

// RunGated is Run that lets the caller finish preparing the container
// while the runtime sets it up: gate runs in a goroutine of its own from
// the start, and the init, having made its mounts, waits for gate to
// return before it writes the sysctls and runs the command. RunGated
// returns only once gate has. So
// the container's network can be attached while its mounts are made, and
// the command still starts with it in place. A gate error calls the
// start off: the init is killed, what the runtime made is undone, and
// that error is returned as is. A spec with hooks runs gate first, as
// Run's caller would: its hooks may expect what gate prepares.
func (b *Builtin) RunGated(ctx context.Context, id, bundle, pidFile string, io IO, gate func(context.Context) error) error {
	return b.launch(ctx, id, bundle, pidFile, io, false, gate)
}

// Create creates container id and leaves its init waiting, its root
// filesystem and credentials set up, until Start releases it: the OCI
// create/start split, for the runc-compatible command line. The barrier
// is a unix socket in the state directory (runc uses a fifo): the init
// accepts one connection on it just before it executes the command, and
// reports on that connection if it cannot, so Start learns the outcome.
// The caller need not stay: the init outlives it.
func (b *Builtin) Create(ctx context.Context, id, bundle, pidFile string, io IO) error {
	return b.launch(ctx, id, bundle, pidFile, io, true, nil)
}

// launch is Run, or Create when create is set; RunGated with gate.
func (b *Builtin) launch(ctx context.Context, id, bundle, pidFile string, io IO, create bool, gate func(context.Context) error) (retErr error) {
	c, err := loadCompiled(bundle)
	if err != nil {
		return err
	}
	spec := c.Spec
	var gateDone chan error
	if gate != nil && spec.Hooks != nil {
		if err := gate(ctx); err != nil {
			return err
		}
		gate = nil
	} else if gate != nil {
		// From now on, beside everything up to the init's mounts; it has
		// ended whenever launch returns, so that the caller knows what
		// it made.
		gateCtx, cancelGate := context.WithCancel(ctx)
		gateDone = make(chan error, 1)
		go func() { gateDone <- gate(gateCtx) }()
		defer func() {
			if gateDone != nil {
				cancelGate() // the runtime's own set-up failed: no need to finish
				<-gateDone
			}
			cancelGate()
		}()
	}
	flags, err := cloneFlags(spec.Linux.Namespaces)
	if err != nil {
		return err
	}
	dir := b.stateDir(id)
	if err := os.MkdirAll(b.Root, 0o700); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return errdefs.Conflict("berth runtime: container %s already exists", id)
		}
		return err
	}
	// exec takes the container's spec (its seccomp filter, namespaces)
	// from here, where only root can write, never from the bundle again:
	// a bundle may be writable from inside the container.
	if err := os.WriteFile(filepath.Join(dir, planFile), c.encode(), 0o600); err != nil {
		os.RemoveAll(dir)
		return err
	}
	// Like runc, a spec without a cgroup path gets one named after the
	// container.
	cgroupsPath := spec.Linux.CgroupsPath
	if cgroupsPath == "" {
		cgroupsPath = "/berth/" + id
	} else if !filepath.IsAbs(cgroupsPath) {
		cgroupsPath = relativeCgroup(cgroupsPath)
	}
	cg, err := b.cgroupManager(cgroupsPath)
	if err != nil {
		os.RemoveAll(dir)
		return err
	}
	pid := 0
	defer func() {
		if retErr == nil {
			return
		}
		if pid > 0 {
			unix.Kill(pid, unix.SIGKILL)
			WaitPid(pid)
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		cg.Destroy(dctx)
		cancel()
		os.RemoveAll(dir)
	}()
	// Saved before anything exists to clean up, so that Delete can undo
	// a start whose caller died half-way; the pid follows once known.
	st := &builtinState{ID: id, Bundle: bundle, CgroupsPath: cgroupsPath, Created: time.Now()}
	if create || spec.Hooks != nil {
		st.Rootfs, st.Annotations, st.Hooks = spec.Root.Path, spec.Annotations, spec.Hooks
	}
	if err := b.saveState(st); err != nil {
		return err
	}
	if err := cg.Create(c.Resources); err != nil {
		return fmt.Errorf("setting up the container's cgroup: %w", err)
	}

	var console *os.File
	if spec.Process.Terminal {
		if io.ConsoleSocket == "" {
			return errdefs.InvalidArgument("a terminal was requested without a console socket")
		}
		if console, err = dialConsole(io.ConsoleSocket); err != nil {
			return err
		}
		defer console.Close()
	}
	// The init joins its v1 cgroups itself (see cgroups.JoinThread); the
	// kernel starts it in the v2 one.
	sys := &syscall.SysProcAttr{Cloneflags: flags}
	if newUserNamespace(spec) {
		userNamespaceAttr(spec, sys)
	}
	closeCgroupFD, err := cloneIntoCgroup(cg, sys)
	if err != nil {
		return err
	}
	exe, err := b.sealedExe()
	if err != nil {
		closeCgroupFD()
		return err
	}
	defer exe.Close()
	mode, extra := "run", []uintptr(nil)
	if create {
		l, err := listenStart(dir)
		if err != nil {
			closeCgroupFD()
			return err
		}
		defer unix.Close(l)
		mode, extra = "create", []uintptr{uintptr(l)}
	}
	path := execPath(exe)
	if newUserNamespace(spec) {
		// From its new user namespace the child may not look into our
		// fd table: it gets the copy as an fd of its own and executes
		// that (closed before the container's command runs).
		path = "/proc/self/fd/" + strconv.Itoa(fdConsole+1+len(extra))
		extra = append(extra, exe.Fd())
	}
	proc, err := startHelper(path, []string{"berth-init", "_init", mode}, io, console, sys, extra...)
	closeCgroupFD()
	if err != nil {
		return err
	}
	pid = proc.pid
	defer proc.closeParentEnds()
	if hasNamespace(spec, specs.UserNamespace) && cg.Mode() != cgroups.Unified {
		// From inside its user namespace the init may not write the
		// host's cgroup files: it is moved in from here. (It is in the
		// v2 cgroup from its clone.)
		if err := cg.Apply(pid); err != nil {
			return fmt.Errorf("moving the init into its cgroup: %w", err)
		}
	}
	start, err := ProcessStartTime(pid)
	if err != nil {
		return fmt.Errorf("container init exited during set-up: %w", err)
	}
	st.Pid, st.PidStart = pid, start
	if err := b.saveState(st); err != nil {
		return err
	}
	var hookState []byte
	if spec.Hooks != nil {
		hookState = st.hookState(specs.StateCreated, pid)
		// The namespaces exist (the init was cloned into them) and the
		// init waits for its go-ahead: the point where runc runs these.
		for _, hooks := range [][]specs.Hook{spec.Hooks.Prestart, spec.Hooks.CreateRuntime} { //nolint:staticcheck // prestart is deprecated, still used (dockerd)
			if err := runHooks(ctx, hooks, hookState); err != nil {
				return err
			}
		}
	}
	if err := proc.release(encodeInitMessage(initMessage{cg: cg, c: c, hookState: hookState, gated: gate != nil}), gate != nil); err != nil {
		return err
	}
	if gateDone != nil {
		// The init makes the container's mounts meanwhile.
		err := <-gateDone
		gateDone = nil
		if err != nil {
			return err // the deferred clean-up kills the init
		}
		if err := proc.proceed(); err != nil {
			return err
		}
	}
	proc.execMark = gate != nil
	rep, err := proc.readReport(ctx)
	switch {
	case err != nil:
		return err
	case rep != nil && !(create && rep.Created):
		return rep.err()
	}
	if err := writePidFile(pidFile, pid); err != nil {
		return err
	}
	if !create && spec.Hooks != nil {
		b.poststart(ctx, st)
	}
	return nil
}

// cloneIntoCgroup makes sys start the process in cg's v2 cgroup, if the
// host has one; the returned function closes the fd once started.
func cloneIntoCgroup(cg *cgroups.Manager, sys *syscall.SysProcAttr) (func(), error) {
	dir, ok := cg.CloneInto()
	if !ok {
		return func() {}, nil
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening the container's cgroup: %w", err)
	}
	sys.UseCgroupFD, sys.CgroupFD = true, fd
	return func() { unix.Close(fd) }, nil
}

func (r *initReport) err() error {
	if r.Code == errdefs.ExitCommandAbsent || r.Code == errdefs.ExitCannotInvoke {
		return &errdefs.ExitStatus{Code: r.Code, Msg: r.Msg}
	}
	return errors.New(r.Msg)
}

func dialConsole(path string) (*os.File, error) {
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("connecting to the console socket: %w", err)
	}
	defer conn.Close()
	return conn.File()
}

func writePidFile(path string, pid int) error {
	if path == "" {
		return nil
	}
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(pid)), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// helperProc is a started init and the parent's ends of
// its two pipes: sync (parent to child: a go-ahead byte and then an
// optional message) and report (child to parent: nothing once the user's
// command runs, or an initReport).
type helperProc struct {
	pid    int
	syncW  *os.File
	report *os.File
	// execMark: the helper writes execMark just before it executes the
	// command (a gated init), so an empty report is its death.
	execMark bool
}

// startHelper forks self with args. The child's fds are 0-2 from io (nil
// is /dev/null), 3 the sync pipe, 4 the report pipe, 5 the console
// socket when there is one, then extra (a created container's start
// listener).
func startHelper(self string, args []string, io IO, console *os.File, sys *syscall.SysProcAttr, extra ...uintptr) (*helperProc, error) {
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		syncR.Close()
		syncW.Close()
		return nil, err
	}
	defer syncR.Close()
	defer repW.Close()
	var devnull *os.File
	stdio := func(f *os.File) (uintptr, error) {
		if f != nil {
			return f.Fd(), nil
		}
		if devnull == nil {
			if devnull, err = os.Open(os.DevNull); err != nil {
				return 0, err
			}
		}
		return devnull.Fd(), nil
	}
	files := make([]uintptr, 0, 6)
	for _, f := range []*os.File{io.Stdin, io.Stdout, io.Stderr} {
		fd, err := stdio(f)
		if err != nil {
			syncW.Close()
			repR.Close()
			return nil, err
		}
		files = append(files, fd)
	}
	if devnull != nil {
		defer devnull.Close()
	}
	files = append(files, syncR.Fd(), repW.Fd())
	if console != nil {
		files = append(files, console.Fd())
	} else {
		files = append(files, ^uintptr(0)) // closed in the child
	}
	files = append(files, extra...)
	pid, err := syscall.ForkExec(self, args, &syscall.ProcAttr{Dir: "/", Env: helperEnv(console != nil), Files: files, Sys: sys})
	if err != nil {
		syncW.Close()
		repR.Close()
		return nil, fmt.Errorf("starting the container's init: %w", err)
	}
	return &helperProc{pid: pid, syncW: syncW, report: repR}, nil
}

// release gives the child its go-ahead, followed by msg.
func (p *helperProc) release(msg []byte, gated bool) error {
	head := binary.BigEndian.AppendUint32([]byte{'g'}, uint32(len(msg)))
	_, err := p.syncW.Write(append(head, msg...))
	if !gated || err != nil {
		p.syncW.Close()
	}
	if err != nil {
		return fmt.Errorf("container init exited during set-up: %w", err)
	}
	return nil
}

// proceed gives a gated init its second go-ahead (see RunGated). An init
// that failed meanwhile is not an error here: its report says why.
func (p *helperProc) proceed() error {
	_, err := p.syncW.Write([]byte{'n'})
	p.syncW.Close()
	if err != nil && !errors.Is(err, unix.EPIPE) {
		return fmt.Errorf("container init: %w", err)
	}
	return nil
}

// readReport waits until the child has executed its command (the report
// pipe closes empty: nil) or reported why it could not.
func (p *helperProc) readReport(ctx context.Context) (*initReport, error) {
	type result struct {
		raw []byte
		err error
	}
	ch := make(chan result, 1)
	go func() {
		raw, err := io.ReadAll(p.report)
		ch <- result{raw, err}
	}()
	var res result
	select {
	case res = <-ch:
	case <-ctx.Done():
		unix.Kill(p.pid, unix.SIGKILL)
		<-ch
		return nil, ctx.Err()
	}
	if res.err != nil {
		return nil, res.err
	}
	raw := res.raw
	if p.execMark {
		if len(raw) == 0 || raw[0] != execMark {
			if len(bytes.TrimSpace(raw)) == 0 {
				return &initReport{Msg: "container init died before it ran the command"}, nil
			}
		} else {
			raw = raw[1:]
		}
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, nil
	}
	var rep initReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		return &initReport{Msg: "container init: " + string(raw)}, nil
	}
	return &rep, nil
}

func (p *helperProc) closeParentEnds() {
	p.syncW.Close()
	p.report.Close()
}

// Kill signals the init, or every process in the container's cgroup.
func (b *Builtin) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	st, err := b.loadState(id)
	if err != nil {
		return err
	}
	if !st.alive() {
		return errdefs.Conflict("berth runtime: container %s is not running", id)
	}
	if err := unix.Kill(st.Pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signalling container %s: %w", id, err)
	}
	if all {
		return b.signalCgroup(st.CgroupsPath, sig)
	}
	return nil
}

func (b *Builtin) signalCgroup(path string, sig syscall.Signal) error {
	cg, err := b.cgroupManager(path)
	if err != nil {
		return err
	}
	pids, err := cg.Pids()
	if err != nil {
		return err
	}
	for _, pid := range pids {
		unix.Kill(pid, sig)
	}
	return nil
}

// Delete forgets container id; with force it first kills what runs.
func (b *Builtin) Delete(ctx context.Context, id string, force bool) error {
	st, err := b.loadState(id)
	if errdefs.IsNotFound(err) {
		if exists(b.stateDir(id)) { // a start that died before saving state
			return os.RemoveAll(b.stateDir(id))
		}
		return nil
	}
	if err != nil {
		return err
	}
	cg, err := b.cgroupManager(st.CgroupsPath)
	if err != nil {
		return err
	}
	pids, _ := cg.Pids()
	if st.alive() || len(pids) > 0 {
		if !force {
			return errdefs.Conflict("berth runtime: container %s is running; stop it first", id)
		}
		// A frozen process does not die until thawed.
		cg.Thaw(ctx)
		if st.alive() {
			unix.Kill(st.Pid, unix.SIGKILL)
		}
		b.signalCgroup(st.CgroupsPath, unix.SIGKILL)
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := cg.Destroy(dctx); err != nil {
		return fmt.Errorf("removing the cgroup of %s: %w", id, err)
	}
	if err := os.RemoveAll(b.stateDir(id)); err != nil {
		return err
	}
	poststop(ctx, st)
	return nil
}

// State reports the container's status: running, paused or stopped.
func (b *Builtin) State(ctx context.Context, id string) (*specs.State, error) {
	st, err := b.loadState(id)
	if err != nil {
		return nil, err
	}
	out := &specs.State{Version: "1.0.2", ID: id, Bundle: st.Bundle, Status: specs.StateStopped, Annotations: st.Annotations}
	if st.alive() {
		out.Pid = st.Pid
		out.Status = specs.StateRunning
		if b.created(st) {
			out.Status = specs.StateCreated
			return out, nil
		}
		if cg, err := b.cgroupManager(st.CgroupsPath); err == nil {
			if frozen, _ := cg.Frozen(); frozen {
				out.Status = specs.ContainerState("paused")
			}
		}
	}
	return out, nil
}

func (b *Builtin) running(id string) (*builtinState, *cgroups.Manager, error) {
	st, err := b.loadState(id)
	if err != nil {
		return nil, nil, err
	}
	if !st.alive() {
		return nil, nil, errdefs.Conflict("berth runtime: container %s is not running", id)
	}
	cg, err := b.cgroupManager(st.CgroupsPath)
	return st, cg, err
}

// Pause freezes the container's cgroup.
func (b *Builtin) Pause(ctx context.Context, id string) error {
	_, cg, err := b.running(id)
	if err != nil {
		return err
	}
	return cg.Freeze(ctx)
}

// Resume thaws it.
func (b *Builtin) Resume(ctx context.Context, id string) error {
	_, cg, err := b.running(id)
	if err != nil {
		return err
	}
	if frozen, _ := cg.Frozen(); !frozen {
		return errdefs.Conflict("berth runtime: container %s is not paused", id)
	}
	return cg.Thaw(ctx)
}

// Ps lists the container's processes.
func (b *Builtin) Ps(ctx context.Context, id string) ([]int, error) {
	st, err := b.loadState(id)
	if err != nil {
		return nil, err
	}
	cg, err := b.cgroupManager(st.CgroupsPath)
	if err != nil {
		return nil, err
	}
	return cg.Pids()
}

// execMessage is what Builtin.Exec hands the exec helper: the process,
// the container's seccomp filter, state and cgroup.
type execMessage struct {
	Process *specs.Process `json:"process"`
	// Filter is the container's seccomp program.
	Filter       []unix.SockFilter        `json:"filter,omitempty"`
	SeccompFlags []specs.LinuxSeccompFlag `json:"seccompFlags,omitempty"`
	State        *builtinState            `json:"state"`
	// Cgroup is the container's cgroups.Manager, encoded.
	Cgroup string `json:"cgroup,omitempty"`
	// CallerCgroup is, on a unified host, the v2 cgroup of the process
	// that starts the helper, for the helper to go back to.
	CallerCgroup string `json:"callerCgroup,omitempty"`
}

// startedSpec is the compiled spec container id was started with, as
// kept in its state directory (a container started by a berth that did
// not keep it there: from its bundle).
func (b *Builtin) startedSpec(id string, st *builtinState) (*compiledSpec, error) {
	raw, err := os.ReadFile(filepath.Join(b.stateDir(id), planFile))
	if errors.Is(err, os.ErrNotExist) {
		return loadCompiled(st.Bundle)
	}
	if err != nil {
		return nil, err
	}
	return decodeCompiled(raw)
}

// Exec runs proc in the container through `berth _exec`, which forks it
// from a thread confined to the container and stays its parent on the
// host (see ExecMain).
func (b *Builtin) Exec(ctx context.Context, id string, proc *specs.Process, pidFile string, io IO, detach bool) (*exec.Cmd, error) {
	st, _, err := b.running(id)
	if err != nil {
		return nil, err
	}
	c, err := b.startedSpec(id, st)
	if err != nil {
		return nil, err
	}
	if !hasNamespace(c.Spec, specs.MountNamespace) {
		return nil, errdefs.NotImplemented("the berth runtime cannot exec in a container without a mount namespace")
	}
	if hasNamespace(c.Spec, specs.UserNamespace) {
		return nil, errdefs.NotImplemented("the berth runtime cannot exec in a container with a user namespace yet")
	}
	cg, err := b.cgroupManager(st.CgroupsPath)
	if err != nil {
		return nil, err
	}
	msg := execMessage{Process: proc, Filter: c.Filter, SeccompFlags: c.SeccompFlags, State: st, Cgroup: cg.Encode()}
	if cg.Mode() == cgroups.Unified {
		msg.CallerCgroup = ownV2Cgroup()
	}
	raw, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	exe, err := b.sealedExe()
	if err != nil {
		return nil, err
	}
	defer exe.Close()
	msgR, msgW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		msgR.Close()
		msgW.Close()
		return nil, err
	}
	defer repR.Close()
	args := []string{"_exec"}
	if detach {
		args = append(args, "--detach")
	}
	cmd := exec.Command(execPath(exe), args...)
	cmd.Args[0] = "berth-exec"
	cmd.Env = helperEnv(false)
	setStdio(cmd, io)
	cmd.ExtraFiles = []*os.File{msgR, repW}
	// Born in the container's v2 cgroup, for its child to inherit (see
	// builtin_exec.go).
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	closeCgroupFD, err := cloneIntoCgroup(cg, cmd.SysProcAttr)
	if err != nil {
		msgR.Close()
		msgW.Close()
		repW.Close()
		return nil, err
	}
	defer closeCgroupFD()
	if proc.Terminal && io.ConsoleSocket != "" {
		console, err := dialConsole(io.ConsoleSocket)
		if err != nil {
			msgR.Close()
			msgW.Close()
			repW.Close()
			return nil, err
		}
		defer console.Close()
		cmd.ExtraFiles = append(cmd.ExtraFiles, console)
		cmd.Env = helperEnv(true)
	}
	err = cmd.Start()
	msgR.Close()
	repW.Close()
	if err != nil {
		msgW.Close()
		if errors.Is(err, syscall.EAGAIN) {
			return nil, pidsLimitReached(err)
		}
		return nil, fmt.Errorf("starting the exec helper: %w", err)
	}
	go func() {
		msgW.Write(raw)
		msgW.Close()
	}()
	h := &helperProc{pid: cmd.Process.Pid, report: repR}
	rep, err := h.readReport(ctx)
	if err == nil && rep != nil && rep.Msg == "" && rep.Pid > 0 {
		err = writePidFile(pidFile, rep.Pid)
		if err == nil && detach {
			err = cmd.Wait()
			if err != nil {
				err = fmt.Errorf("exec helper: %w", err)
			}
			return nil, err
		}
		if err == nil {
			return cmd, nil
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if err != nil {
		return nil, err
	}
	if rep == nil {
		return nil, errors.New("the exec helper exited without starting the process")
	}
	return nil, rep.err()
}

// ownV2Cgroup is the calling process's v2 cgroup path, "" if unknown.
func ownV2Cgroup() string {
	raw, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p
		}
	}
	return ""
}

// ProcessStartTime is the start time of pid in clock ticks since boot
// (field 22 of /proc/<pid>/stat); with the pid it names one process for
// good. A zombie is reported as gone.
func ProcessStartTime(pid int) (uint64, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces; fields restart after ')'.
	i := strings.LastIndexByte(string(raw), ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	fields := strings.Fields(string(raw[i+1:]))
	if len(fields) < 20 {
		return 0, errors.New("malformed stat")
	}
	if fields[0] == "Z" || fields[0] == "X" {
		return 0, errors.New("zombie")
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

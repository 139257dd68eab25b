package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// What the built-in runtime has for the OCI command line only (see
// internal/runtime/ocicli): the create/start split and hooks. berth's own
// engine uses Run, with neither.

// startSocket is the barrier of a created container, in its state
// directory: it exists from Create until Start.
const startSocket = "start.sock"

// fdStartListener is where a created container's init finds the
// listening start socket (the first extra fd of startHelper).
const fdStartListener = 6

// listenStart creates the start socket in the state directory dir and
// returns the listening fd. The address goes through /proc/self/fd of the
// directory, so that a long state path still fits sun_path.
func listenStart(dir string) (int, error) {
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(dfd)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	addr := &unix.SockaddrUnix{Name: fmt.Sprintf("/proc/self/fd/%d/%s", dfd, startSocket)}
	if err := unix.Bind(fd, addr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("creating the start barrier: %w", err)
	}
	if err := unix.Listen(fd, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("creating the start barrier: %w", err)
	}
	return fd, nil
}

// awaitStart is a created container's init at its barrier: it tells
// Create that set-up is done (closing the report pipe), waits for Start to
// connect, and makes that connection its report channel, so that a
// failure from here on reaches Start. The connection closes when the
// command is executed.
func awaitStart() error {
	raw, _ := json.Marshal(initReport{Created: true})
	if _, err := unix.Write(fdReport, raw); err != nil {
		return err
	}
	unix.Close(fdReport)
	var conn int
	for {
		var err error
		conn, _, err = unix.Accept4(fdStartListener, unix.SOCK_CLOEXEC)
		if err == nil {
			break
		}
		if err != unix.EINTR {
			os.Exit(1) // nobody to report to
		}
	}
	unix.Close(fdStartListener)
	if conn != fdReport { // accept4 takes the lowest free number: 4 itself, usually
		if err := unix.Dup3(conn, fdReport, unix.O_CLOEXEC); err != nil {
			os.Exit(1)
		}
		unix.Close(conn)
	}
	return nil
}

// Start releases a container left waiting by Create and returns once its
// command runs (or failed to), then runs the poststart hooks.
func (b *Builtin) Start(ctx context.Context, id string) error {
	st, err := b.loadState(id)
	if err != nil {
		return err
	}
	if !st.alive() {
		return errdefs.Conflict("cannot start a container that has stopped")
	}
	dir := b.stateDir(id)
	if !exists(filepath.Join(dir, startSocket)) {
		return errdefs.Conflict("cannot start an already running container")
	}
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	conn := os.NewFile(uintptr(fd), startSocket)
	defer conn.Close()
	addr := &unix.SockaddrUnix{Name: fmt.Sprintf("/proc/self/fd/%d/%s", dfd, startSocket)}
	if err := unix.Connect(fd, addr); err != nil {
		return errdefs.Conflict("cannot start container %s: %v", id, err)
	}
	// Only one Start gets through: the init accepts one connection and
	// closes the listener; the file goes now so that State says running.
	os.Remove(filepath.Join(dir, startSocket))
	p := &helperProc{pid: st.Pid, report: conn}
	rep, err := p.readReport(ctx)
	if err != nil {
		return err
	}
	if rep != nil {
		return rep.err()
	}
	b.poststart(ctx, st)
	return nil
}

// created reports whether st's container waits for Start.
func (b *Builtin) created(st *builtinState) bool {
	return exists(filepath.Join(b.stateDir(st.ID), startSocket))
}

// hookState is the state hooks get on their stdin.
func (st *builtinState) hookState(status specs.ContainerState, pid int) []byte {
	raw, _ := json.Marshal(specs.State{Version: specs.Version, ID: st.ID, Status: status, Pid: pid, Bundle: st.Bundle, Annotations: st.Annotations})
	return raw
}

// poststart runs the poststart hooks; as the spec says, a failure is only
// logged.
func (b *Builtin) poststart(ctx context.Context, st *builtinState) {
	if st.Hooks == nil || len(st.Hooks.Poststart) == 0 {
		return
	}
	if err := runHooks(ctx, st.Hooks.Poststart, st.hookState(specs.StateRunning, st.Pid)); err != nil {
		fmt.Fprintf(os.Stderr, "warning: poststart hook: %v\n", err)
	}
}

// poststop runs the poststop hooks of a deleted container, logging
// failures.
func poststop(ctx context.Context, st *builtinState) {
	if st.Hooks == nil || len(st.Hooks.Poststop) == 0 {
		return
	}
	if err := runHooks(ctx, st.Hooks.Poststop, st.hookState(specs.StateStopped, 0)); err != nil {
		fmt.Fprintf(os.Stderr, "warning: poststop hook: %v\n", err)
	}
}

// runHooks runs hooks in order with state on their stdin; the first that
// fails or outlives its timeout stops the rest.
func runHooks(ctx context.Context, hooks []specs.Hook, state []byte) error {
	for i, h := range hooks {
		if err := runHook(ctx, h, state); err != nil {
			return fmt.Errorf("error running hook #%d %s: %w", i, h.Path, err)
		}
	}
	return nil
}

func runHook(ctx context.Context, h specs.Hook, state []byte) error {
	if h.Timeout != nil {
		if *h.Timeout <= 0 {
			return errdefs.InvalidArgument("timeout must be positive")
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(*h.Timeout)*time.Second)
		defer cancel()
	}
	args := h.Args
	if len(args) == 0 {
		args = []string{h.Path}
	}
	var stdout, stderr bytes.Buffer
	cmd := &exec.Cmd{Path: h.Path, Args: args, Env: h.Env, Stdin: bytes.NewReader(state), Stdout: &stdout, Stderr: &stderr}
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%w, stdout: %s, stderr: %s", err, stdout.String(), stderr.String())
		}
		return nil
	case <-ctx.Done():
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("timeout: %w", ctx.Err())
	}
}

// Info is what the OCI command line's state and list show of a container.
type Info struct {
	specs.State
	Rootfs  string
	Created time.Time
	// InitPid is the init's pid even once it has exited (State.Pid is 0
	// then), for its parent to reap.
	InitPid int
}

// Info reports container id's state with its root and creation time.
func (b *Builtin) Info(ctx context.Context, id string) (*Info, error) {
	st, err := b.loadState(id)
	if err != nil {
		return nil, err
	}
	state, err := b.State(ctx, id)
	if err != nil {
		return nil, err
	}
	return &Info{State: *state, Rootfs: st.Rootfs, Created: st.Created, InitPid: st.Pid}, nil
}

// List returns the ids of the containers the runtime keeps state for.
func (b *Builtin) List() ([]string, error) {
	entries, err := os.ReadDir(b.Root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && exists(filepath.Join(b.Root, e.Name(), "state.json")) {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// Update changes the cgroup limits of a live container to res.
func (b *Builtin) Update(ctx context.Context, id string, res *specs.LinuxResources) error {
	st, err := b.loadState(id)
	if err != nil {
		return err
	}
	if !st.alive() {
		return errdefs.Conflict("container %s is not running", id)
	}
	cg, err := b.cgroupManager(st.CgroupsPath)
	if err != nil {
		return err
	}
	return cg.Create(res)
}

// Features describes what the built-in runtime implements, in the shape
// of `runc features` (runtime-spec's features document).
func Features() *features.Features {
	yes, no := true, false
	var caps []string
	for name := range capabilityNumbers() {
		caps = append(caps, name)
	}
	slices.Sort(caps)
	var ns []string
	for t := range namespaceFlags {
		ns = append(ns, string(t))
	}
	slices.Sort(ns)
	return &features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"},
		MountOptions:  mountOptionNames(),
		Linux: &features.Linux{
			Namespaces:   ns,
			Capabilities: caps,
			Cgroup:       &features.Cgroup{V1: &yes, V2: &yes, Systemd: &no, SystemdUser: &no},
			Seccomp: &features.Seccomp{
				Enabled: &yes,
				Actions: []string{"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
					"SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"},
				Operators: []string{"SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
					"SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"},
				Archs: []string{"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"},
			},
			Apparmor: &features.Apparmor{Enabled: &no},
			Selinux:  &features.Selinux{Enabled: &no},
		},
	}
}

// mountOptionNames lists the mount options the built-in runtime knows.
func mountOptionNames() []string {
	var names []string
	for name := range mountOptions {
		names = append(names, name)
	}
	for name := range propagationOptions {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// relativeCgroup makes a relative linux.cgroupsPath absolute as runc does:
// under the cgroup of the runtime process itself (its cgroup v2 entry;
// the root when it has none).
func relativeCgroup(path string) string {
	own := "/"
	if raw, err := os.ReadFile("/proc/self/cgroup"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if p, ok := strings.CutPrefix(line, "0::"); ok && strings.HasPrefix(p, "/") {
				own = p
			}
		}
	}
	return filepath.Join(own, path)
}

// newUserNamespace reports whether spec asks for a new user namespace.
func newUserNamespace(spec *specs.Spec) bool {
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.UserNamespace && ns.Path == "" {
			return true
		}
	}
	return false
}

// checkUserNamespace accepts a new user namespace with uid and gid maps;
// joining one by path is refused (a multithreaded process cannot), and so
// are maps without a namespace.
func checkUserNamespace(spec *specs.Spec) error {
	l := spec.Linux
	if hasNamespace(spec, specs.UserNamespace) && !newUserNamespace(spec) {
		return errdefs.NotImplemented("the berth runtime does not join user namespaces by path (linux.namespaces); run this container with --runtime runc")
	}
	if newUserNamespace(spec) && (len(l.UIDMappings) == 0 || len(l.GIDMappings) == 0) {
		return errdefs.InvalidArgument("runtime spec: a user namespace in linux.namespaces needs linux.uidMappings and linux.gidMappings")
	}
	return nil
}

// userNamespaceAttr makes sys clone the init into a new user namespace
// with the spec's maps, written by Go's fork between the clone and the
// execve, and switch to the namespace's root before the execve: a process
// whose uid is unmapped when it executes keeps no capabilities.
func userNamespaceAttr(spec *specs.Spec, sys *syscall.SysProcAttr) {
	conv := func(maps []specs.LinuxIDMapping) []syscall.SysProcIDMap {
		out := make([]syscall.SysProcIDMap, len(maps))
		for i, m := range maps {
			out[i] = syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)}
		}
		return out
	}
	sys.UidMappings, sys.GidMappings = conv(spec.Linux.UIDMappings), conv(spec.Linux.GIDMappings)
	sys.GidMappingsEnableSetgroups = true
	sys.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
}

// bindDevices makes the container's device nodes in a user namespace,
// where mknod is not allowed: each is a bind mount of the host's node onto
// an empty file, opened in the root (never followed out of it) and
// mounted through its fd.
func bindDevices(spec *specs.Spec, root *rootDir) error {
	if !devTmpfs(spec) {
		return nil
	}
	seen := map[string]bool{}
	devs := append(append([]specs.LinuxDevice{}, spec.Linux.Devices...), defaultDevices...)
	for _, d := range devs {
		if seen[d.Path] {
			continue
		}
		seen[d.Path] = true
		if err := bindDevice(root, d.Path); err != nil {
			return fmt.Errorf("binding device %s: %w", d.Path, err)
		}
	}
	for _, l := range [][2]string{{"/proc/self/fd", "/dev/fd"}, {"/proc/self/fd/0", "/dev/stdin"},
		{"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"}, {"pts/ptmx", "/dev/ptmx"}} {
		if err := createLink(root, l[0], l[1]); err != nil {
			return fmt.Errorf("linking %s: %w", l[1], err)
		}
	}
	return nil
}

// bindDevice binds the host's node at path (a device path from the spec,
// on the host's /dev) onto the same path in the root.
func bindDevice(root *rootDir, path string) error {
	src, err := openSource(path)
	if err != nil {
		return err
	}
	defer src.close()
	mp, err := root.openMountPoint(path, mountOnFile, nil)
	if err != nil {
		return err
	}
	defer mp.close()
	if err := unix.Mount(procSelfFd(src.fd), mp.target(), "", unix.MS_BIND, ""); err != nil {
		return err
	}
	fd, err := mp.mounted(&src.stx)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

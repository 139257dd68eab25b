package runtime

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime/cgroups"
	"github.com/berth-dev/berth/internal/runtime/seccompbpf"
)

// The processes of the built-in runtime that run berth's own code at the
// edge of a container:
//
//   - `berth _init run` is forked by Builtin.Run into the new namespaces.
//     It waits for its go-ahead (sent once it is in its cgroup), builds
//     the root filesystem, drops privileges and executes the container's
//     command, becoming the container's PID 1. It runs on the main
//     thread, locked to it by cmd/berth before anything else:
//     namespaces, credentials, capabilities and the seccomp filter are
//     per thread, and the thread that sets them up must be the one that
//     calls execve.
//   - `berth _exec` (Builtin.Exec, ExecMain) never enters the container:
//     it confines one thread of its own and forks the command from it
//     (see builtin_exec.go), then stays on the host as its parent.
//
// Both run from a read-only copy of berth's binary, never the installed
// one (sealed.go): a container that gets one of them to run berth again
// (`#!/proc/self/exe`) and reopens /proc/<pid>/exe for writing gets
// EROFS (CVE-2019-5736). _init also makes itself non-dumpable at once,
// so /proc/<pid>/exe of the init itself is out of reach without
// CAP_SYS_PTRACE in the host's user namespace.

// fds of the helper processes, set by startHelper.
const (
	fdSync    = 3
	fdReport  = 4
	fdConsole = 5
)

// initFailure is an error of the init with the exit status Docker
// reports for it: 127 or 126 for a command that cannot be run, else 0.
type initFailure struct {
	code int
	msg  string
}

func (e *initFailure) Error() string { return e.msg }

// InitMain is `berth _init run`. It returns
// only on failure, after reporting it to the parent.
func InitMain(args []string) int {
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	console := inheritedConsole()
	report := os.NewFile(fdReport, "report")
	err := runInit(args, console)
	if err == nil {
		err = errors.New("container init returned without executing the command")
	}
	return writeReport(report, err)
}

// writeReport reports err to the parent of a helper process and returns
// the helper's exit status.
func writeReport(report *os.File, err error) int {
	rep := initReport{Msg: err.Error()}
	var f *initFailure
	if errors.As(err, &f) {
		rep.Code = f.code
	}
	raw, _ := json.Marshal(rep)
	report.Write(raw)
	return 1
}

// consoleEnv, set to 1 in a helper's environment, says that fd 5 is a
// console socket. Probing the fd would not do: Go's runtime opens files
// of its own at start-up, which take the free numbers.
const consoleEnv = "_BERTH_CONSOLE"

// helperEnv is the environment of the helper processes. Go's runtime
// would otherwise read the cgroup CPU limit at start-up and keep two files
// open for updates.
func helperEnv(console bool) []string {
	env := []string{"GODEBUG=containermaxprocs=0,updatemaxprocs=0"}
	if console {
		env = append(env, consoleEnv+"=1")
	}
	return env
}

// inheritedConsole returns fd 5, the console socket, if the parent passed
// one, and marks the inherited fds close-on-exec.
func inheritedConsole() *os.File {
	for fd := fdSync; fd <= fdReport; fd++ {
		unix.CloseOnExec(fd)
	}
	if os.Getenv(consoleEnv) != "1" {
		return nil
	}
	unix.CloseOnExec(fdConsole)
	return os.NewFile(fdConsole, "console")
}

func runInit(args []string, console *os.File) error {
	sync := os.NewFile(fdSync, "sync")
	// The go-ahead and the message's length; EOF means the parent gave up.
	var head [5]byte
	if _, err := io.ReadFull(sync, head[:]); err != nil || head[0] != 'g' {
		os.Exit(1)
	}
	raw := make([]byte, binary.BigEndian.Uint32(head[1:]))
	if _, err := io.ReadFull(sync, raw); err != nil {
		return fmt.Errorf("reading the init message: %w", err)
	}
	if len(args) != 1 || (args[0] != "run" && args[0] != "create") {
		return fmt.Errorf("usage: berth _init run|create")
	}
	m, err := decodeInitMessage(raw)
	if err != nil {
		return err
	}
	var gate func() error
	if m.gated {
		gate = func() error { return awaitGate(sync) }
	}
	return initContainer(m.c, m.cg, console, args[0] == "create", m.hookState, gate)
}

// initContainer sets up the container and executes its command; with
// create it waits for Start first (see awaitStart). hookState is the state
// given to the createContainer and startContainer hooks. gate, when set,
// is waited for once the mounts are made, before anything that may need
// the container's network (its sysctls, its command).
func initContainer(c *compiledSpec, cg *cgroups.Manager, console *os.File, create bool, hookState []byte, gate func() error) error {
	spec := c.Spec
	userNS := hasNamespace(spec, specs.UserNamespace)
	if !userNS { // in a user namespace the parent has moved us (see launch)
		if err := cg.JoinThread(); err != nil {
			return fmt.Errorf("joining the container's cgroup: %w", err)
		}
	}
	rootfs := spec.Root.Path
	newCgroupNS := false
	for _, ns := range spec.Linux.Namespaces {
		switch {
		case ns.Type == specs.NetworkNamespace && ns.Path == "":
			if err := LoopbackUp(); err != nil {
				return err
			}
		case ns.Path != "":
			if err := joinNamespace(ns); err != nil {
				return err
			}
		case ns.Type == specs.CgroupNamespace:
			// Now that the parent has moved us into the container's
			// cgroup, so that it becomes the namespace's root.
			if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
				return fmt.Errorf("creating the cgroup namespace: %w", err)
			}
			newCgroupNS = true
		}
	}
	if !hasNamespace(spec, specs.MountNamespace) {
		// The host's mount namespace: no mount is berth's to make there
		// (runc's pivot_root would move the caller's root), and
		// compileSpec refused what would need one. The process still
		// gets its root, by chroot: it shares every host mount anyway,
		// so there is nothing for chroot to protect.
		if err := unix.Chroot(rootfs); err != nil {
			return fmt.Errorf("chroot to the root filesystem: %w", err)
		}
		if err := unix.Chdir("/"); err != nil {
			return err
		}
		if gate != nil {
			if err := gate(); err != nil {
				return err
			}
		}
		return execProcess(spec.Process, c.Filter, c.SeccompFlags, console, nil, nil, withExecMark(startBarrier(spec, create, hookState), gate != nil))
	}
	root, err := setupMounts(spec, rootfs, cg, newCgroupNS)
	if err != nil {
		return err
	}
	defer root.close()
	if userNS {
		// No mknod in a user namespace: the host's nodes are bound in.
		if err := bindDevices(spec, root); err != nil {
			return err
		}
	} else if err := createDevices(spec, root); err != nil {
		return err
	}
	if err := createCwd(root, spec.Process.Cwd); err != nil {
		return err
	}
	var master, slave *os.File
	if spec.Process.Terminal {
		if master, slave, err = openContainerPTY(root); err != nil {
			return err
		}
		if err := bindConsole(root, slave); err != nil {
			return err
		}
	}
	if spec.Hostname != "" {
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return fmt.Errorf("setting the hostname: %w", err)
		}
	}
	if spec.Domainname != "" {
		if err := unix.Setdomainname([]byte(spec.Domainname)); err != nil {
			return fmt.Errorf("setting the domain name: %w", err)
		}
	}
	if spec.Hooks != nil {
		// In the container's namespaces, before pivot_root: the hook's
		// path resolves in the runtime's filesystem.
		if err := runHooks(context.Background(), spec.Hooks.CreateContainer, hookState); err != nil {
			return err
		}
	}
	if err := pivotRoot(root); err != nil {
		return err
	}
	root.close()
	if p := spec.Linux.RootfsPropagation; p != "" {
		// On the new root, after pivot_root, as runc does: set on the
		// rootfs before, it would reach the host's mounts.
		if err := unix.Mount("", "/", "", propagationOptions[p], ""); err != nil {
			return fmt.Errorf("setting the root's propagation to %s: %w", p, err)
		}
	}
	if gate != nil {
		if err := gate(); err != nil {
			return err
		}
	}
	if err := writeSysctls(spec.Linux.Sysctl); err != nil {
		return err
	}
	if len(spec.Linux.MaskedPaths)+len(spec.Linux.ReadonlyPaths) > 0 {
		// Now the container's own root, through its own /proc.
		if err := checkProcSelfFd(); err != nil {
			return fmt.Errorf("masked and read-only paths need /proc mounted in the container: %w", err)
		}
		if root, err = openRootDir("/"); err != nil {
			return err
		}
		defer root.close()
		if err := maskPaths(root, spec.Linux.MaskedPaths); err != nil {
			return err
		}
		if err := readonlyPaths(root, spec.Linux.ReadonlyPaths); err != nil {
			return err
		}
		root.close()
	}
	if spec.Root.Readonly {
		if err := remountBind("/", unix.MS_RDONLY); err != nil {
			return fmt.Errorf("making the root filesystem read-only: %w", err)
		}
	}
	if adj := spec.Process.OOMScoreAdj; adj != nil {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(fmt.Sprint(*adj)), 0o644); err != nil {
			return fmt.Errorf("setting oom_score_adj: %w", err)
		}
	}
	return execProcess(spec.Process, c.Filter, c.SeccompFlags, console, master, slave, withExecMark(startBarrier(spec, create, hookState), gate != nil))
}

// awaitGate waits for RunGated's second go-ahead on the sync pipe; EOF
// means the caller's preparation failed and the start is called off.
func awaitGate(sync *os.File) error {
	var b [1]byte
	if n, _ := sync.Read(b[:]); n != 1 || b[0] != 'n' {
		return errors.New("the start was called off before the command ran")
	}
	return nil
}

// execMark is the byte a gated init writes on its report pipe just
// before it executes the command: a pipe that closes without it (and
// without a report) is an init that died before, killed while it
// waited at the gate, which must not pass for a started command.
const execMark = 'x'

// withExecMark is ready followed, when mark, by the exec mark.
func withExecMark(ready func() error, mark bool) func() error {
	if !mark {
		return ready
	}
	return func() error {
		if ready != nil {
			if err := ready(); err != nil {
				return err
			}
		}
		_, err := unix.Write(fdReport, []byte{execMark})
		return err
	}
}

// startBarrier is what the init does once its command is found: wait for
// Start (when created by Create), then run the startContainer hooks; nil
// when there is neither.
func startBarrier(spec *specs.Spec, create bool, hookState []byte) func() error {
	if !create && (spec.Hooks == nil || len(spec.Hooks.StartContainer) == 0) {
		return nil
	}
	return func() error {
		if create {
			if err := awaitStart(); err != nil {
				return err
			}
		}
		if spec.Hooks == nil {
			return nil
		}
		return runHooks(context.Background(), spec.Hooks.StartContainer, hookState)
	}
}

// hasNamespace reports whether spec gives the container a namespace of
// type t (new or joined).
func hasNamespace(spec *specs.Spec, t specs.LinuxNamespaceType) bool {
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == t {
			return true
		}
	}
	return false
}

// LoopbackUp brings up lo in the calling thread's (new) network namespace,
// as every runtime Docker uses does: a --network none container still has
// 127.0.0.1.
func LoopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("configuring lo: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("reading lo's flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing up lo: %w", err)
	}
	return nil
}

// createCwd makes the working directory if the image lacks it, as runc
// does.
func createCwd(root *rootDir, cwd string) error {
	if cwd == "" || cwd == "/" {
		return nil
	}
	fd, err := root.lookupDir(cwd, true)
	if err == nil {
		unix.Close(fd)
	}
	if err != nil {
		return fmt.Errorf("creating the working directory %s: %w", cwd, err)
	}
	return nil
}

func joinNamespace(ns specs.LinuxNamespace) error {
	flag, ok := namespaceFlags[ns.Type]
	if !ok {
		return fmt.Errorf("joining %s namespace %s: not supported by the berth runtime", ns.Type, ns.Path)
	}
	fd, err := unix.Open(ns.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("joining %s namespace: %w", ns.Type, err)
	}
	if ns.Type == specs.MountNamespace {
		// Only a thread with a filesystem context of its own may join a
		// mount namespace, and Go's threads share one.
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			unix.Close(fd)
			return fmt.Errorf("unshare: %w", err)
		}
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, int(flag)); err != nil {
		return fmt.Errorf("joining %s namespace %s: %w", ns.Type, ns.Path, err)
	}
	return nil
}

// openPTY opens a new pty pair on the devpts instance whose ptmx is at
// ptmx (the container's own).
func openPTY(ptmx, ptsDir string) (master, slave *os.File, err error) {
	m, err := os.OpenFile(ptmx, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the container's pty: %w", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlocking the pty: %w", err)
	}
	n, err := unix.IoctlGetUint32(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("pty number: %w", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("%s/%d", ptsDir, n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("opening the pty's terminal: %w", err)
	}
	return m, s, nil
}

// openContainerPTY opens a new pty pair on the container's devpts
// instance (its /dev/pts, mounted by the init), through fds only.
func openContainerPTY(root *rootDir) (master, slave *os.File, err error) {
	pts, err := root.lookupDir("/dev/pts", false)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the container's pty: %w", err)
	}
	defer unix.Close(pts)
	var st unix.Statfs_t
	if err := unix.Fstatfs(pts, &st); err != nil || st.Type != unix.DEVPTS_SUPER_MAGIC {
		return nil, nil, fmt.Errorf("opening the container's pty: /dev/pts is not a devpts mount")
	}
	m, err := unix.Openat(pts, "ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("opening the container's pty: %w", err)
	}
	master = os.NewFile(uintptr(m), "ptmx")
	if err := unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlocking the pty: %w", err)
	}
	s, err := ptyPeer(m, pts)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("opening the pty's terminal: %w", err)
	}
	return master, os.NewFile(uintptr(s), "pty"), nil
}

// ptyPeer opens the terminal of the pty master m. TIOCGPTPEER does it
// with no path to look up; before Linux 4.13 the terminal is opened by
// its number in pts, the devpts directory.
func ptyPeer(m, pts int) (int, error) {
	s, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(m), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno == 0 {
		return int(s), nil
	}
	n, err := unix.IoctlGetUint32(m, unix.TIOCGPTN)
	if err != nil {
		return -1, err
	}
	return unix.Openat(pts, strconv.FormatUint(uint64(n), 10), unix.O_RDWR|unix.O_NOCTTY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// bindConsole mounts the terminal on /dev/console, as runc does.
func bindConsole(root *rootDir, slave *os.File) error {
	src := &source{fd: int(slave.Fd())}
	if err := statFd(src.fd, &src.stx); err != nil {
		return fmt.Errorf("mounting /dev/console: %w", err)
	}
	top, err := root.bindAt(src, "/dev/console", false, nil)
	if err != nil {
		return fmt.Errorf("mounting /dev/console: %w", err)
	}
	unix.Close(top)
	return nil
}

// sendConsole hands the pty master to whoever listens on the console
// socket, with runc's message shape (the name as data, the fd as
// SCM_RIGHTS).
func sendConsole(console, master *os.File) error {
	rights := unix.UnixRights(int(master.Fd()))
	if err := unix.Sendmsg(int(console.Fd()), []byte("pty-master"), rights, nil, 0); err != nil {
		return fmt.Errorf("sending the terminal: %w", err)
	}
	return nil
}

// execProcess turns the container's init thread into proc: terminal, limits,
// credentials, capabilities, seccomp, working directory, then execve.
// ready, when set, runs once the process is confined, just before the
// last seccomp load and execve: a created container's wait for Start and
// its startContainer hooks.
func execProcess(proc *specs.Process, filter []unix.SockFilter, seccompFlags []specs.LinuxSeccompFlag, console, master, slave *os.File, ready func() error) error {
	for _, rl := range proc.Rlimits {
		res, ok := rlimitResources[strings.ToLower(strings.TrimPrefix(rl.Type, "RLIMIT_"))]
		if !ok {
			return fmt.Errorf("unknown rlimit %q", rl.Type)
		}
		if err := syscall.Setrlimit(res, &syscall.Rlimit{Cur: rl.Soft, Max: rl.Hard}); err != nil {
			return fmt.Errorf("setting %s to %d:%d: %w", rl.Type, rl.Soft, rl.Hard, err)
		}
	}
	if _, err := unix.Setsid(); err != nil {
		return fmt.Errorf("setsid: %w", err)
	}
	if slave != nil {
		if console == nil {
			return errors.New("a terminal was requested without a console socket")
		}
		if proc.ConsoleSize != nil {
			unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(proc.ConsoleSize.Height), Col: uint16(proc.ConsoleSize.Width)})
		}
		if err := sendConsole(console, master); err != nil {
			return err
		}
		master.Close()
		if err := unix.IoctlSetInt(int(slave.Fd()), unix.TIOCSCTTY, 0); err != nil {
			return fmt.Errorf("setting the controlling terminal: %w", err)
		}
		for fd := 0; fd <= 2; fd++ {
			if err := unix.Dup3(int(slave.Fd()), fd, 0); err != nil {
				return err
			}
		}
		slave.Close()
	}
	if console != nil {
		console.Close()
	}
	if len(proc.Args) == 0 {
		return errdefs.InvalidArgument("no command given")
	}
	path, err := lookPath(proc.Args[0], proc.Env)
	if err != nil {
		return err
	}
	// Without no_new_privs the filter needs CAP_SYS_ADMIN, so it goes in
	// before the capabilities are dropped; with it, as late as possible.
	if filter != nil && !proc.NoNewPrivileges {
		if err := seccompbpf.Load(filter, seccompFlags); err != nil {
			return fmt.Errorf("loading the seccomp filter: %w", err)
		}
	}
	caps, err := capabilitiesFor(proc.Capabilities)
	if err != nil {
		return err
	}
	if err := caps.Apply(capability.BOUNDS); err != nil {
		return fmt.Errorf("dropping bounding capabilities: %w", err)
	}
	if err := switchUser(proc.User); err != nil {
		return err
	}
	if err := caps.Apply(capability.CAPS | capability.AMBS); err != nil {
		return fmt.Errorf("setting capabilities: %w", err)
	}
	if proc.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("setting no_new_privs: %w", err)
		}
	}
	// A created container waits for Start here, as confined as it will
	// run (credentials, capabilities, no_new_privs; the filter too unless
	// no_new_privs lets it come last, as runc orders it): whatever can
	// reach it meanwhile (an exec into the created container, with
	// CAP_SYS_PTRACE) finds no more than the container's privileges.
	if ready != nil {
		if err := ready(); err != nil {
			return err
		}
	}
	if proc.NoNewPrivileges {
		if filter != nil {
			if err := seccompbpf.Load(filter, seccompFlags); err != nil {
				return fmt.Errorf("loading the seccomp filter: %w", err)
			}
		}
	}
	umask := 0o022
	if proc.User.Umask != nil {
		umask = int(*proc.User.Umask)
	}
	unix.Umask(umask)
	if proc.Cwd != "" {
		if err := unix.Chdir(proc.Cwd); err != nil {
			return fmt.Errorf("chdir to cwd (%q) set in config.json failed: %w", proc.Cwd, err)
		}
	}
	closeExtraFiles()
	resetSignals()
	err = syscall.Exec(path, proc.Args, proc.Env)
	// Like runc, a command that was found but that the kernel refuses
	// (exec format error, a missing interpreter) fails after the start:
	// the container exits with status 1 and the error on its stderr.
	fmt.Fprintf(os.Stderr, "exec %s: %v\n", path, err)
	os.Exit(1)
	return nil
}

// capabilitiesFor builds the capability sets of proc for the calling
// thread. The bounding set must be applied while CAP_SETPCAP is still
// held, the others after the user switch.
func capabilitiesFor(c *specs.LinuxCapabilities) (capability.Capabilities, error) {
	caps, err := capability.NewPid2(0)
	if err != nil {
		return nil, err
	}
	caps.Clear(capability.CAPS | capability.BOUNDS | capability.AMBS)
	if c == nil {
		return caps, nil
	}
	byName := capabilityNumbers()
	// The kernel raises an ambient capability only if it is permitted and
	// inheritable; runc drops the others silently (specs made by `runc
	// spec` list ambient capabilities without inheritable ones).
	var ambient []string
	for _, name := range c.Ambient {
		if slices.Contains(c.Permitted, name) && slices.Contains(c.Inheritable, name) {
			ambient = append(ambient, name)
		}
	}
	for _, set := range []struct {
		which capability.CapType
		names []string
	}{
		{capability.BOUNDING, c.Bounding},
		{capability.EFFECTIVE, c.Effective},
		{capability.PERMITTED, c.Permitted},
		{capability.INHERITABLE, c.Inheritable},
		{capability.AMBIENT, ambient},
	} {
		for _, name := range set.names {
			// A capability this kernel does not know cannot be granted;
			// like runc, go without it (granting less) rather than fail:
			// an engine may list capabilities newer than the host's.
			if cp, ok := byName[name]; ok {
				caps.Set(set.which, cp)
			}
		}
	}
	return caps, nil
}

func capabilityNumbers() map[string]capability.Cap {
	out := map[string]capability.Cap{}
	last, _ := capability.LastCap()
	for _, c := range capability.List() {
		if c <= last {
			out[capName(c)] = c
		}
	}
	return out
}

// switchUser sets the groups, gid and uid of the calling thread, keeping
// the capabilities across the uid change (they are set right after).
//
// Only this thread's credentials matter: it is the one that calls execve,
// which ends the others. Go's syscall.Setresuid and friends change every
// thread of the process (stopping the world to do it), which costs a
// quarter of a millisecond here for nothing.
func switchUser(u specs.User) error {
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return err
	}
	var groups unsafe.Pointer
	gids := make([]uint32, len(u.AdditionalGids)) // gid_t is 32 bits on every Linux ABI
	copy(gids, u.AdditionalGids)
	if len(gids) > 0 {
		groups = unsafe.Pointer(&gids[0])
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(gids)), uintptr(groups), 0); errno != 0 {
		return fmt.Errorf("setgroups: %w", errno)
	}
	gid, uid := uintptr(u.GID), uintptr(u.UID)
	if _, _, errno := unix.RawSyscall(unix.SYS_SETRESGID, gid, gid, gid); errno != 0 {
		return fmt.Errorf("setting gid %d: %w", u.GID, errno)
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_SETRESUID, uid, uid, uid); errno != 0 {
		return fmt.Errorf("setting uid %d: %w", u.UID, errno)
	}
	return unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0)
}

// lookPath finds file on the PATH of env, like the container's shell
// would, with the errors Docker shows.
func lookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		if err := executable(file); err != nil {
			return "", execFailure(file, err)
		}
		return file, nil
	}
	pathEnv := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, dir := range strings.Split(pathEnv, ":") {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + file
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", &initFailure{code: errdefs.ExitCommandAbsent, msg: fmt.Sprintf("exec: %q: executable file not found in $PATH", file)}
}

// executable checks what runc checks before starting a command: that it
// exists and is a file with an execute bit.
func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return unix.EACCES
	}
	return nil
}

// execFailure is Docker's report of a command that cannot be started:
// 127 when it does not exist, else 126.
func execFailure(file string, err error) error {
	code := errdefs.ExitCannotInvoke
	if errors.Is(err, unix.ENOENT) {
		code = errdefs.ExitCommandAbsent
	}
	return &initFailure{code: code, msg: fmt.Sprintf("exec: %q: %v", file, err)}
}

// closeExtraFiles marks every descriptor above stderr close-on-exec, so
// that the container's command starts with its stdio only: with one
// close_range call (Linux 5.11+), else fd by fd.
func closeExtraFiles() {
	if unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC) == nil {
		return
	}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		var fd int
		if _, err := fmt.Sscan(e.Name(), &fd); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}

// kernelSigaction is struct sigaction as the kernel takes it on the
// 64-bit architectures berth builds for.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// resetSignals gives the command default signal dispositions and an
// empty mask. Ignored signals survive execve, and the monitor ignores
// some for itself; Go's own handlers would be reset by execve anyway.
//
// This goes straight to the kernel: signal.Reset waits for Go's signal
// goroutine to settle, which costs milliseconds, and execve follows at
// once.
func resetSignals() {
	var dfl kernelSigaction // SIG_DFL is 0
	for sig := 1; sig <= 64; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue
		}
		unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
	}
	var empty uint64
	unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&empty)), 0, 8, 0, 0)
}

// WaitPid reaps the child pid and returns its status; a status that
// cannot be had reads as exit 255.
func WaitPid(pid int) unix.WaitStatus {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return unix.WaitStatus(255 << 8)
		}
		return ws
	}
}

// ExitCode is the status Docker reports for ws: the exit code, or 128+n
// for a process killed by signal n.
func ExitCode(ws unix.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return 255
}

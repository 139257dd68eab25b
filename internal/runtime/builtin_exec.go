package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
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

// `berth _exec` runs a process in a running container without any berth
// process ever entering it. The helper stays on the host (host pid
// namespace, host root) as the process's parent. One locked OS thread of
// it takes on everything the process must have: the container's cgroups,
// namespaces, root and working directory, limits, terminal, seccomp
// filter, credentials and capabilities; then that thread forks and
// executes the command directly (forkExec), and dies with its
// goroutine. The forked child is the first thing of the exec that the
// container can see, and it already has all of the above.
//
// The child is a plain fork: until its execve it has a copy-on-write
// copy of the helper's memory, never the memory itself (syscall.ForkExec
// would share it, CLONE_VM|CLONE_VFORK). The helper makes itself
// non-dumpable first, which the copy inherits: the child is out of reach
// of ptrace and /proc/<pid>/{mem,exe} for container processes without
// CAP_SYS_PTRACE. A container granted CAP_SYS_PTRACE (in the host's user
// namespace, as Docker grants it) can still stop the child in the
// microseconds before its execve, as it can runc's init: it then holds a
// confined process with a copy of the helper's memory (the exec's
// message: the process and the container's state), whose writes to the
// copy hurt no one else, and none of the helper's descriptors: the
// thread forks from a file table of its own (see privateFiles).
//
// The child must be born in the container's cgroups, so that the pids
// limit holds at the fork itself. In v1 the thread joins them (v1 cgroups
// are per thread). A v2 cgroup holds whole processes, and clone3's
// CLONE_INTO_CGROUP is no way in from here: the container's seccomp
// filter, already loaded, usually refuses clone3 (Docker's profile makes
// it ENOSYS), and a cgroup2 mounted with nsdelegate refuses it from
// inside the container's cgroup namespace. So Builtin.Exec starts the
// helper itself in the container's v2 cgroup, and the child inherits it
// from a plain clone; the helper leaves it after the fork (see
// leaveContainerCgroup).
//
// What runs before execve runs under the container's seccomp filter,
// which this thread has already loaded: the fork (clone with SIGCHLD
// only, rt_sigprocmask around it) and in the child setsid, dup3,
// ioctl(TIOCSCTTY), rt_sigaction, rt_sigprocmask and execve (write and
// exit_group on failure; see execChild). Docker's default profile allows
// every one of them; a custom profile that forbids one makes every exec
// fail (as it would under runc, whose init runs after the filter too).

// ExecMain is `berth _exec [--detach]`: it reads an execMessage on fd 3,
// starts the process in the container and reports on fd 4 ({"pid":N} or
// an initReport with the failure). Without --detach it then stays the
// process's parent until it exits, and exits with its status.
func ExecMain(args []string) int {
	// First of all: the child starts with a copy of this memory.
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	detach := len(args) > 0 && args[0] == "--detach"
	console := inheritedConsole()
	// Nothing the helper inherited but stdio may reach the process.
	closeExtraFiles()
	report := os.NewFile(fdReport, "report")
	fail := func(err error) int { return writeReport(report, err) }
	raw, err := io.ReadAll(os.NewFile(fdSync, "message"))
	if err != nil {
		return fail(err)
	}
	var msg execMessage
	if err := json.Unmarshal(raw, &msg); err != nil || msg.State == nil || msg.Process == nil {
		return fail(fmt.Errorf("exec helper: bad message: %v", err))
	}
	if msg.Process.Terminal && console == nil && detach {
		return fail(errdefs.InvalidArgument("a detached process with a terminal needs a console socket"))
	}
	// A signal sent to the helper from now on is relayed instead of
	// ending it. (The child resets every signal to its default itself.)
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs)
	s, err := startInContainer(msg)
	if err != nil {
		return fail(err)
	}
	if s.master != nil && console != nil {
		err := sendConsole(console, s.master)
		s.master.Close()
		s.master = nil
		if err != nil {
			unix.Kill(s.pid, unix.SIGKILL)
			WaitPid(s.pid)
			return fail(err)
		}
	}
	if console != nil {
		console.Close()
	}
	out, _ := json.Marshal(initReport{Pid: s.pid})
	report.Write(out)
	report.Close()
	if detach {
		return 0
	}
	leaveContainerCgroup(msg)
	if s.master != nil {
		return proxyTerminal(s.master, s.pid, sigs)
	}
	return relayUntilExit(s.pid, sigs, nil)
}

// leaveContainerCgroup moves the helper from the container's v2 cgroup,
// where it was born for its child's sake, back to its caller's. On a
// unified host that cgroup holds the container's limits, which would
// otherwise count the helper (its threads, its memory) for as long as it
// waits; on a hybrid one it holds none, and the move (milliseconds of
// the kernel's cgroup locking) is not worth it.
func leaveContainerCgroup(msg execMessage) {
	if msg.CallerCgroup == "" {
		return
	}
	cg, err := cgroups.Decode(msg.Cgroup)
	if err != nil || cg.Mode() != cgroups.Unified {
		return
	}
	_, v2 := cg.Dirs()
	f, err := os.OpenFile(filepath.Join(v2.Mountpoint, filepath.Clean("/"+msg.CallerCgroup), "cgroup.procs"), os.O_WRONLY, 0)
	if err != nil {
		return // the caller's cgroup is gone: stay
	}
	f.WriteString(strconv.Itoa(os.Getpid()))
	f.Close()
}

// spawned is a process started in a container, and the master of its
// terminal when it has one.
type spawned struct {
	pid    int
	master *os.File
}

// startInContainer starts msg's process in the container and returns
// once it has executed the command.
func startInContainer(msg execMessage) (spawned, error) {
	st := msg.State
	pidfd, err := unix.PidfdOpen(st.Pid, 0)
	if err != nil {
		return spawned{}, errdefs.Conflict("container is not running")
	}
	defer unix.Close(pidfd)
	// The pidfd names the process checked here for good.
	if !st.alive() {
		return spawned{}, errdefs.Conflict("container is not running")
	}
	cg, err := cgroups.Decode(msg.Cgroup)
	if err != nil {
		return spawned{}, err
	}
	limits, err := parseRlimits(msg.Process.Rlimits)
	if err != nil {
		return spawned{}, err
	}
	// The limits are set on this whole process for the fork (see
	// setRlimits); the helper gets its own back from a thread that kept
	// CAP_SYS_RESOURCE, once the child has its copy.
	defer restoreRlimits(limits)
	flags, err := namespacesToJoin(st.Pid)
	// The namespaces were read by pid: they are the init's only if it
	// still runs now (a pid is not reused while its process lives).
	if err != nil || !st.alive() {
		return spawned{}, errdefs.Conflict("container is not running")
	}
	return startOnThread(execThread{msg: msg, pidfd: pidfd, cg: cg, limits: limits, flags: flags})
}

// namespacesToJoin returns the CLONE_NEW* flags of the namespaces of pid
// that differ from ours (a container may share the host's network, say).
// A namespace of pid that cannot be read is an error, never "the same as
// ours".
func namespacesToJoin(pid int) (int, error) {
	flags := 0
	for _, ns := range []struct {
		name string
		flag int
	}{{"mnt", unix.CLONE_NEWNS}, {"uts", unix.CLONE_NEWUTS}, {"ipc", unix.CLONE_NEWIPC}, {"net", unix.CLONE_NEWNET}, {"pid", unix.CLONE_NEWPID}, {"cgroup", unix.CLONE_NEWCGROUP}} {
		theirs, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns.name))
		if err != nil {
			return 0, err
		}
		ours, err := os.Readlink("/proc/self/ns/" + ns.name)
		if err != nil {
			return 0, err
		}
		if theirs != ours {
			flags |= ns.flag
		}
	}
	return flags, nil
}

// seccompFlagTSync is the runtime-spec name of SECCOMP_FILTER_FLAG_TSYNC.
const seccompFlagTSync specs.LinuxSeccompFlag = "SECCOMP_FILTER_FLAG_TSYNC"

// execThread is what the confined thread needs.
type execThread struct {
	msg    execMessage
	pidfd  int
	cg     *cgroups.Manager
	limits []rlimitSetting
	flags  int // namespaces to join
}

// startOnThread does the work on a new OS thread that is never given
// back to Go's scheduler: namespaces, credentials, capabilities, the
// seccomp filter and v1 cgroups are per thread, and the thread ends with
// its goroutine.
func startOnThread(t execThread) (spawned, error) {
	type result struct {
		s     spawned
		slave *os.File
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		goruntime.LockOSThread() // never unlocked: the thread dies with us
		var r result
		r.s, r.slave, r.err = t.confineAndFork()
		ch <- r
	}()
	r := <-ch
	// The thread forked with a file table of its own (see privateFiles):
	// the terminal is closed in the helper's own here.
	if r.slave != nil {
		r.slave.Close()
	}
	if r.err != nil && r.s.master != nil {
		r.s.master.Close()
		r.s.master = nil
	}
	return r.s, r.err
}

// confineAndFork runs on the locked thread. Host paths (cgroupfs, /proc)
// are used before the thread joins the container's mount namespace, the
// container's (cwd, pty, command) after. The terminal's files, when it
// opens them, are the caller's to close, also on failure.
func (t *execThread) confineAndFork() (_ spawned, slave *os.File, _ error) {
	proc := t.msg.Process
	if len(proc.Args) == 0 {
		return spawned{}, nil, errdefs.InvalidArgument("no command given")
	}
	pollFDs, err := runtimePollFDs()
	if err != nil {
		return spawned{}, nil, err
	}
	// In the container's v1 cgroups before the fork, so that the kernel
	// counts the child against the pids limit as it forks it. The helper
	// was born in the container's v2 cgroup (see Builtin.Exec), which the
	// child inherits the same way.
	if err := t.cg.JoinThread(); err != nil {
		return spawned{}, nil, fmt.Errorf("joining the container's cgroup: %w", err)
	}
	caps, err := capabilitiesFor(proc.Capabilities)
	if err != nil {
		return spawned{}, nil, err
	}
	// A mount namespace can only be joined by a thread with a filesystem
	// context of its own; the pid namespace applies to its children.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return spawned{}, nil, fmt.Errorf("unshare: %w", err)
	}
	if t.flags != 0 {
		if err := unix.Setns(t.pidfd, t.flags); err != nil {
			return spawned{}, nil, fmt.Errorf("joining the container's namespaces: %w", err)
		}
	}
	// This thread's root is now the container's.
	umask := 0o022
	if proc.User.Umask != nil {
		umask = int(*proc.User.Umask)
	}
	unix.Umask(umask)
	if err := enterCwd(proc.Cwd); err != nil {
		return spawned{}, nil, err
	}
	var master *os.File
	stdio, ctty := [3]int{0, 1, 2}, false
	if proc.Terminal {
		if master, slave, err = openExecPTY(); err != nil {
			return spawned{}, nil, err
		}
		if proc.ConsoleSize != nil {
			unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(proc.ConsoleSize.Height), Col: uint16(proc.ConsoleSize.Width)})
		}
		sfd := int(slave.Fd())
		stdio, ctty = [3]int{sfd, sfd, sfd}, true
	}
	path, err := lookPath(proc.Args[0], proc.Env)
	if err == nil {
		// Before the seccomp filter, which may refuse unshare.
		err = privateFiles(pollFDs, stdio)
	}
	if err == nil {
		err = t.dropPrivileges(caps)
	}
	if err != nil {
		return spawned{master: master}, slave, err
	}
	// The child always leads a session of its own (forkExec): it must
	// not share the caller's session or controlling terminal.
	// Whatever was opened meanwhile without O_CLOEXEC stays out too.
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	// Until its execve the child shows this thread's name and the
	// helper's command line (its memory is a copy of the helper's): let
	// it show nothing of berth to the container meanwhile.
	setThreadName(filepath.Base(path))
	restoreArgv := blankArgv()
	pid, err := forkExec(path, proc.Args, proc.Env, [3]int{0, 1, 2}, ctty)
	restoreArgv()
	if err != nil {
		return spawned{master: master}, slave, forkFailure(path, err)
	}
	return spawned{pid: pid, master: master}, slave, nil
}

// pollerFDs are the fds of Go's network poller: its epoll instance and
// the eventfd that wakes it.
type pollerFDs struct{ epoll, wake []int }

// runtimePollFDs returns the poller's fds, once the poller exists. It
// reads the host's /proc: call it before joining the container's mount
// namespace.
func runtimePollFDs() (pollerFDs, error) {
	var p pollerFDs
	// A pipe of os.Pipe is pollable: the poller starts with it, if it
	// has not yet, and is never created on this thread later.
	r, w, err := os.Pipe()
	if err != nil {
		return p, err
	}
	r.Close()
	w.Close()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return p, err
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < 3 {
			continue
		}
		switch l, _ := os.Readlink("/proc/self/fd/" + e.Name()); l {
		case "anon_inode:[eventpoll]":
			p.epoll = append(p.epoll, fd)
		case "anon_inode:[eventfd]":
			p.wake = append(p.wake, fd)
		}
	}
	if len(p.epoll) == 0 {
		return p, errors.New("exec helper: Go's poller has no epoll instance")
	}
	return p, nil
}

// privateFiles gives the calling thread a file table of its own that
// holds the process's stdio (on 0-2) and Go's poller only, for the fork
// to copy. A tracer that
// stops the child before its execve then finds none of the helper's
// descriptors in it: not the report pipe to the caller, not the pidfd,
// and above all not the poller's epoll instance, whose events Go's
// runtime takes for pointers into its memory. In the thread's table
// that instance is replaced by an empty one of its own (a poll on this
// thread finds nothing; the helper's other threads share the helper's
// table and poll the real one); the wake-up eventfd stays, as a write
// to it is all the runtime may do on this thread and a write from the
// child only wakes the poller. The thread ends with its goroutine, and
// its table with it.
func privateFiles(poller pollerFDs, stdio [3]int) error {
	if err := unix.Unshare(unix.CLONE_FILES); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	// The process's stdio go on 0-2 of this table now, not in the child:
	// until its dup3s the child would hold the helper's own 0-2 (with
	// -t, the caller's terminal), which a tracer could take.
	for i, fd := range stdio {
		if fd != i {
			if err := unix.Dup3(fd, i, 0); err != nil {
				return fmt.Errorf("dup3: %w", err)
			}
		}
	}
	keep := slices.Concat([]int{0, 1, 2}, poller.epoll, poller.wake)
	for _, fd := range poller.epoll {
		empty, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return fmt.Errorf("epoll_create1: %w", err)
		}
		err = unix.Dup3(empty, fd, unix.O_CLOEXEC)
		unix.Close(empty)
		if err != nil {
			return fmt.Errorf("dup3: %w", err)
		}
	}
	slices.Sort(keep)
	next := 3
	for _, fd := range keep {
		if fd > next {
			if err := unix.CloseRange(uint(next), uint(fd-1), 0); err != nil {
				return fmt.Errorf("close_range: %w", err)
			}
		}
		next = max(next, fd+1)
	}
	if err := unix.CloseRange(uint(next), ^uint(0), 0); err != nil {
		return fmt.Errorf("close_range: %w", err)
	}
	return nil
}

// setThreadName sets the calling thread's name (comm, 15 bytes at most).
func setThreadName(name string) {
	if p, err := unix.BytePtrFromString(name); err == nil {
		unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(p)), 0, 0, 0)
	}
}

// blankArgv zeroes the process's argv strings, which /proc/<pid>/cmdline
// shows, and returns the function that puts them back. Go's os.Args
// point into that memory; nothing reads them meanwhile.
func blankArgv() (restore func()) {
	area := argvArea()
	if area == nil {
		return func() {}
	}
	saved := append([]byte(nil), area...)
	clear(area)
	return func() { copy(area, saved) }
}

// argvArea is the memory of the argv strings, which the kernel lays out
// one after the other, each ended by a NUL; nil if os.Args do not look so.
func argvArea() []byte {
	if len(os.Args) == 0 || len(os.Args[0]) == 0 {
		return nil
	}
	start := unsafe.StringData(os.Args[0])
	n := 0
	for _, a := range os.Args {
		if len(a) == 0 || unsafe.StringData(a) != (*byte)(unsafe.Add(unsafe.Pointer(start), n)) {
			return nil
		}
		n += len(a) + 1
	}
	return unsafe.Slice(start, n-1)
}

// dropPrivileges gives the thread the process's limits, seccomp filter,
// capabilities and credentials, in the order runc uses: the filter goes
// in before the capabilities are dropped (loading it needs CAP_SYS_ADMIN
// without no_new_privs), or as late as possible with no_new_privs.
func (t *execThread) dropPrivileges(caps capability.Capabilities) error {
	proc := t.msg.Process
	// Without TSYNC: the filter is for this thread (and so the child)
	// only, never for the helper's other threads.
	var seccompFlags []specs.LinuxSeccompFlag
	for _, f := range t.msg.SeccompFlags {
		if f != seccompFlagTSync {
			seccompFlags = append(seccompFlags, f)
		}
	}
	if err := setRlimits(t.limits); err != nil {
		return err
	}
	if t.msg.Filter != nil && !proc.NoNewPrivileges {
		if err := seccompbpf.Load(t.msg.Filter, seccompFlags); err != nil {
			return fmt.Errorf("loading the seccomp filter: %w", err)
		}
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
		if t.msg.Filter != nil {
			if err := seccompbpf.Load(t.msg.Filter, seccompFlags); err != nil {
				return fmt.Errorf("loading the seccomp filter: %w", err)
			}
		}
	}
	return nil
}

// forkFailure explains a failed ForkExec: the fork itself (the pids
// limit) or the child's execve.
func forkFailure(path string, err error) error {
	if errors.Is(err, unix.EAGAIN) {
		return pidsLimitReached(err)
	}
	return execFailure(path, err)
}

// pidsLimitReached is the error of a fork refused by the kernel.
func pidsLimitReached(err error) error {
	return errdefs.Unavailable("cannot start another process in the container: its pids limit (or the user's process limit) is reached: %v", err)
}

// enterCwd changes the thread's working directory to the process's, as
// root (like runc: a user may be given a directory it cannot search),
// and refuses one outside the container's root.
func enterCwd(cwd string) error {
	if cwd == "" {
		cwd = "/"
	}
	if err := unix.Chdir(cwd); err != nil {
		return fmt.Errorf("chdir to cwd (%q) set in config.json failed: %w", cwd, err)
	}
	// getcwd(2) reports a directory outside the root as "(unreachable)...".
	if wd, err := unix.Getwd(); err != nil || !strings.HasPrefix(wd, "/") {
		return fmt.Errorf("cwd (%q) is outside the container's root", cwd)
	}
	return nil
}

// ptmxDev is /dev/ptmx's and every devpts instance's ptmx: char 5:2.
var ptmxDev = unix.Mkdev(5, 2)

// openExecPTY opens a new pty pair on the container's devpts, from a
// thread whose root is the container's. No symlink is followed (the
// container owns /dev), the node must be a pty multiplexer, and the
// terminal is had from the master (TIOCGPTPEER), never by a path.
func openExecPTY() (master, slave *os.File, err error) {
	fd, err := unix.Openat2(unix.AT_FDCWD, "/dev/pts/ptmx", &unix.OpenHow{
		Flags:   unix.O_RDWR | unix.O_NOCTTY | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_NO_SYMLINKS,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("opening the container's /dev/pts/ptmx: %w", err)
	}
	m := os.NewFile(uintptr(fd), "pty-master")
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != ptmxDev {
		m.Close()
		return nil, nil, errors.New("the container's /dev/pts/ptmx is not a pty multiplexer")
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlocking the pty: %w", err)
	}
	sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		m.Close()
		return nil, nil, fmt.Errorf("opening the pty's terminal: %w", errno)
	}
	return m, os.NewFile(sfd, "pty"), nil
}

// rlimitSetting is one of the process's resource limits and the helper's
// own value of it.
type rlimitSetting struct {
	name     string
	resource int
	want     syscall.Rlimit
	own      syscall.Rlimit
}

func parseRlimits(rls []specs.POSIXRlimit) ([]rlimitSetting, error) {
	out := make([]rlimitSetting, 0, len(rls))
	for _, rl := range rls {
		res, ok := rlimitResources[strings.ToLower(strings.TrimPrefix(rl.Type, "RLIMIT_"))]
		if !ok {
			return nil, fmt.Errorf("unknown rlimit %q", rl.Type)
		}
		s := rlimitSetting{name: rl.Type, resource: res, want: syscall.Rlimit{Cur: rl.Soft, Max: rl.Hard}}
		if err := syscall.Getrlimit(res, &s.own); err != nil {
			return nil, fmt.Errorf("reading %s: %w", rl.Type, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// setRlimits gives the whole helper process the process's limits, so
// that the child is forked with them. Limits belong to a process, not a
// thread, and prlimit(2) on the child would come after its execve: the
// helper lends them for the fork instead. Until restoreRlimits its other
// threads (which allocate little, and open nothing) live under them too.
// The child gets exactly these (forkExec restores nothing): a process
// without an RLIMIT_NOFILE (never one of berth's, whose specs always
// carry it) gets the helper's soft limit, which Go raised at start.
func setRlimits(limits []rlimitSetting) error {
	for _, l := range limits {
		if err := syscall.Setrlimit(l.resource, &l.want); err != nil {
			return fmt.Errorf("setting %s to %d:%d: %w", l.name, l.want.Cur, l.want.Max, err)
		}
	}
	return nil
}

// restoreRlimits gives the helper its own limits back. It runs on a
// thread that kept CAP_SYS_RESOURCE (not the one that dropped it), so
// that lowered hard limits can be raised again; where berth runs without
// that capability the helper keeps the lowered hard limits and gets its
// soft ones back as far as they allow.
func restoreRlimits(limits []rlimitSetting) {
	for _, l := range limits {
		if syscall.Setrlimit(l.resource, &l.own) != nil {
			syscall.Setrlimit(l.resource, &syscall.Rlimit{Cur: min(l.own.Cur, l.want.Max), Max: l.want.Max})
		}
	}
}

// relayUntilExit forwards the signals the helper gets on sigs (every
// signal, see ExecMain) to pid until it exits, and returns the exit
// status to exit with. SIGWINCH goes to onWinch instead when set.
func relayUntilExit(pid int, sigs chan os.Signal, onWinch func()) int {
	go func() {
		for s := range sigs {
			sig := s.(syscall.Signal)
			if sig == unix.SIGCHLD || sig == unix.SIGURG || sig == unix.SIGPIPE {
				continue
			}
			if sig == unix.SIGWINCH && onWinch != nil {
				onWinch()
				continue
			}
			unix.Kill(pid, sig)
		}
	}()
	return ExitCode(WaitPid(pid))
}

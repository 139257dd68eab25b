package runtime

import (
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// forkExec starts the command path with argv and env in a plain fork of
// the calling thread: clone(SIGCHLD), without CLONE_VM or CLONE_VFORK,
// so the child has a copy-on-write copy of this process's memory, never
// the memory itself. syscall.ForkExec forks with CLONE_VM|CLONE_VFORK,
// and its child shares the caller's memory until its execve: a tracer
// with CAP_SYS_PTRACE that stops that child (it is visible in the
// container from the clone on) could write into the exec helper, which
// runs as host root. A tracer reaching this child only touches the
// child's own copy, which holds the confinement of the calling thread.
//
// The child gets stdio[i] on fd i (the fds are the caller's), a new
// session, fd 0 as its controlling terminal if ctty, every signal at its
// default disposition and an empty signal mask; every other fd stays as
// the caller has it (close-on-exec or not). The error is the errno of
// the clone or of the child's failed setup or execve, which the child
// reports on a close-on-exec pipe before it exits with 127. Everything
// the child touches is prepared here; the child itself only makes raw
// system calls (see execChild).
func forkExec(path string, argv, env []string, stdio [3]int, ctty bool) (pid int, err error) {
	if len(argv) == 0 {
		return 0, syscall.EINVAL
	}
	p := &forkPlan{stdio: stdio, ctty: ctty, all: ^uint64(0)}
	if p.path, err = syscall.BytePtrFromString(path); err != nil {
		return 0, err
	}
	if p.argv, err = syscall.SlicePtrFromStrings(argv); err != nil {
		return 0, err
	}
	if p.envv, err = syscall.SlicePtrFromStrings(env); err != nil {
		return 0, err
	}
	// An fd that stays where it is must survive the execve: the child
	// would need fcntl for it, the caller does it here.
	for i, fd := range stdio {
		if fd == i {
			if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
				return 0, err
			} else if flags&unix.FD_CLOEXEC != 0 {
				if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, flags&^unix.FD_CLOEXEC); err != nil {
					return 0, err
				}
			}
		}
	}
	// ForkLock, as Go's own fork: no fd being made close-on-exec by
	// another goroutine meanwhile slips into the child.
	syscall.ForkLock.Lock()
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		syscall.ForkLock.Unlock()
		return 0, err
	}
	p.pipe = fds[1]
	p.nextfd = max(p.pipe, stdio[0], stdio[1], stdio[2], 2) + 1
	rpid, errno := forkChild(p)
	syscall.ForkLock.Unlock()
	unix.Close(fds[1])
	runtime.KeepAlive(p)
	if errno != 0 {
		unix.Close(fds[0])
		return 0, errno
	}
	pid = int(rpid)
	var report uintptr // the child's errno, if it writes one
	n, rerr := readFull(fds[0], unsafe.Slice((*byte)(unsafe.Pointer(&report)), unsafe.Sizeof(report)))
	unix.Close(fds[0])
	switch {
	case rerr == nil && n == 0:
		return pid, nil // EOF: the pipe closed on execve
	case rerr == nil && n == int(unsafe.Sizeof(report)):
		WaitPid(pid) // it exits with 127
		return 0, syscall.Errno(report)
	}
	// Neither: what runs there is unknown.
	unix.Kill(pid, unix.SIGKILL)
	WaitPid(pid)
	if rerr == nil {
		rerr = syscall.EPIPE
	}
	return 0, rerr
}

// readFull reads into b until it is full or at EOF, through EINTR.
func readFull(fd int, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := unix.Read(fd, b[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}

// forkPlan is all the child reads: prepared by forkExec, so that the
// child allocates nothing and calls nothing but the kernel.
type forkPlan struct {
	path   *byte
	argv   []*byte // NUL-terminated arrays, ending in nil
	envv   []*byte
	stdio  [3]int // the fds to put on 0, 1, 2
	ctty   bool
	pipe   int // the write end of the report pipe, close-on-exec
	nextfd int // above every fd the child moves
	dfl    kernelSigaction
	all    uint64 // signal masks
	empty  uint64
	old    uint64
	errno  uintptr // the child's report
}

// forkChild forks the calling thread with every signal blocked, as Go's
// runtime_BeforeFork does: no Go signal handler (async preemption's
// SIGURG among them) may run in the child, which is no Go thread. The
// parent gets its mask back. It must not grow the stack (nosplit) on
// either side of the clone: the child's stack is a copy whose runtime
// state it may not touch.
//
//go:nosplit
//go:norace
func forkChild(p *forkPlan) (pid uintptr, errno syscall.Errno) {
	_, _, errno = syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&p.all)), uintptr(unsafe.Pointer(&p.old)), 8, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	pid, _, errno = syscall.RawSyscall6(unix.SYS_CLONE, uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
	if errno == 0 && pid == 0 {
		execChild(p) // does not return
	}
	syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&p.old)), 0, 8, 0, 0)
	return pid, errno
}

// execChild is the child of forkChild, from the clone to the execve.
// It runs in a copy of a Go process that has one thread and no working
// runtime: it makes raw system calls only (RawSyscall6 is nosplit), and
// allocates, defers, locks and writes no pointer. Its system calls are
// setsid, dup3, ioctl(TIOCSCTTY), rt_sigaction, rt_sigprocmask and
// execve, then write and exit_group on failure; they run under the
// seccomp filter of the forking thread.
//
// The fd shuffle is Go's: fds that a lower dup would overwrite, and the
// report pipe, move above all of them first (close-on-exec), then each
// goes onto its place.
//
//go:nosplit
//go:norace
func execChild(p *forkPlan) {
	var (
		err syscall.Errno
		i   int
	)
	if _, _, err = syscall.RawSyscall6(unix.SYS_SETSID, 0, 0, 0, 0, 0, 0); err != 0 {
		goto fail
	}
	if p.pipe < 3 {
		if _, _, err = syscall.RawSyscall6(unix.SYS_DUP3, uintptr(p.pipe), uintptr(p.nextfd), unix.O_CLOEXEC, 0, 0, 0); err != 0 {
			goto fail
		}
		p.pipe = p.nextfd
		p.nextfd++
	}
	for i = 0; i < 3; i++ {
		if p.stdio[i] < i {
			if p.nextfd == p.pipe {
				p.nextfd++
			}
			if _, _, err = syscall.RawSyscall6(unix.SYS_DUP3, uintptr(p.stdio[i]), uintptr(p.nextfd), unix.O_CLOEXEC, 0, 0, 0); err != 0 {
				goto fail
			}
			p.stdio[i] = p.nextfd
			p.nextfd++
		}
	}
	for i = 0; i < 3; i++ {
		if p.stdio[i] == i {
			continue // made inheritable by forkExec
		}
		if _, _, err = syscall.RawSyscall6(unix.SYS_DUP3, uintptr(p.stdio[i]), uintptr(i), 0, 0, 0, 0); err != 0 {
			goto fail
		}
	}
	if p.ctty {
		if _, _, err = syscall.RawSyscall6(unix.SYS_IOCTL, 0, unix.TIOCSCTTY, 0, 0, 0, 0); err != 0 {
			goto fail
		}
	}
	// Go's handlers and any inherited SIG_IGN go; execve would keep an
	// ignored signal ignored.
	for i = 1; i <= 64; i++ {
		if i == int(unix.SIGKILL) || i == int(unix.SIGSTOP) {
			continue
		}
		if _, _, err = syscall.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(i), uintptr(unsafe.Pointer(&p.dfl)), 0, 8, 0, 0); err != 0 {
			goto fail
		}
	}
	if _, _, err = syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&p.empty)), 0, 8, 0, 0); err != 0 {
		goto fail
	}
	_, _, err = syscall.RawSyscall6(unix.SYS_EXECVE, uintptr(unsafe.Pointer(p.path)), uintptr(unsafe.Pointer(&p.argv[0])), uintptr(unsafe.Pointer(&p.envv[0])), 0, 0, 0)
fail:
	p.errno = uintptr(err)
	syscall.RawSyscall6(unix.SYS_WRITE, uintptr(p.pipe), uintptr(unsafe.Pointer(&p.errno)), unsafe.Sizeof(p.errno), 0, 0, 0)
	for {
		syscall.RawSyscall6(unix.SYS_EXIT_GROUP, 127, 0, 0, 0, 0, 0)
	}
}

package seccompbpf

import (
	"errors"
	"fmt"
	goruntime "runtime"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// flagTSync is the runtime-spec name of SECCOMP_FILTER_FLAG_TSYNC, which
// the specs package has no constant for.
const flagTSync specs.LinuxSeccompFlag = "SECCOMP_FILTER_FLAG_TSYNC"

// Load installs prog as a seccomp filter of the calling OS thread only (of
// all the process's threads with SECCOMP_FILTER_FLAG_TSYNC), so the caller
// should hold its goroutine on the thread with runtime.LockOSThread and
// exec from it. The thread must have set no_new_privs, or hold
// CAP_SYS_ADMIN.
//
// flags are the configuration's: SECCOMP_FILTER_FLAG_LOG,
// SECCOMP_FILTER_FLAG_SPEC_ALLOW and SECCOMP_FILTER_FLAG_TSYNC; any other
// is an error.
func Load(prog []unix.SockFilter, flags []specs.LinuxSeccompFlag) error {
	if len(prog) == 0 || len(prog) > unix.BPF_MAXINSNS {
		return errdefs.InvalidArgument("seccomp: a filter has 1 to %d instructions, not %d", unix.BPF_MAXINSNS, len(prog))
	}
	var bits uintptr
	for _, f := range flags {
		switch f {
		case specs.LinuxSeccompFlagLog:
			bits |= unix.SECCOMP_FILTER_FLAG_LOG
		case specs.LinuxSeccompFlagSpecAllow:
			bits |= unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
		case flagTSync:
			bits |= unix.SECCOMP_FILTER_FLAG_TSYNC
		case specs.LinuxSeccompFlagWaitKillableRecv:
			return errdefs.NotImplemented("seccomp flag %s belongs to seccomp notify, which the built-in runtime does not support; use --runtime runc", f)
		default:
			return errdefs.InvalidArgument("unknown seccomp flag %q", f)
		}
	}

	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, bits, uintptr(unsafe.Pointer(&fprog)))
	goruntime.KeepAlive(prog)
	if errno != 0 {
		switch {
		case errors.Is(errno, unix.EACCES):
			return fmt.Errorf("loading seccomp filter: %w (set no_new_privs first, or hold CAP_SYS_ADMIN)", errno)
		case errors.Is(errno, unix.EINVAL) && bits != 0:
			return fmt.Errorf("loading seccomp filter with flags %v: %w (the kernel may not know one of the flags)", flags, errno)
		}
		return fmt.Errorf("loading seccomp filter: %w", errno)
	}
	if r != 0 {
		// With TSYNC, a positive result names a thread whose filters
		// could not be synchronised; nothing was installed.
		return fmt.Errorf("loading seccomp filter: thread %d could not be synchronised with SECCOMP_FILTER_FLAG_TSYNC", r)
	}
	return nil
}

package seccompbpf_test

import (
	"encoding/binary"
	"fmt"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/runtime/seccompbpf"
)

// seccompData is the kernel's struct seccomp_data.
type seccompData struct {
	nr   uint32
	arch uint32
	ip   uint64
	args [6]uint64
}

// bytes lays d out as the kernel does, in the host's byte order.
func (d seccompData) bytes() []byte {
	b := make([]byte, 64)
	binary.NativeEndian.PutUint32(b[0:], d.nr)
	binary.NativeEndian.PutUint32(b[4:], d.arch)
	binary.NativeEndian.PutUint64(b[8:], d.ip)
	for i, a := range d.args {
		binary.NativeEndian.PutUint64(b[16+8*i:], a)
	}
	return b
}

// checkProgram applies the kernel's checks of a seccomp filter
// (bpf_check_classic and seccomp_check_filter): a known set of
// instructions, aligned in-bounds loads, jumps that stay inside the program,
// and a return at the end.
func checkProgram(prog []unix.SockFilter) error {
	if len(prog) == 0 || len(prog) > unix.BPF_MAXINSNS {
		return fmt.Errorf("program has %d instructions", len(prog))
	}
	for pc, in := range prog {
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			if in.K >= 64 || in.K%4 != 0 {
				return fmt.Errorf("%d: load at offset %d", pc, in.K)
			}
		case unix.BPF_LD | unix.BPF_IMM, unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, unix.BPF_ALU | unix.BPF_OR | unix.BPF_K,
			unix.BPF_MISC | unix.BPF_TAX, unix.BPF_MISC | unix.BPF_TXA, unix.BPF_RET | unix.BPF_K, unix.BPF_RET | unix.BPF_A:
		case unix.BPF_JMP | unix.BPF_JA:
			if uint64(in.K) >= uint64(len(prog)-pc-1) {
				return fmt.Errorf("%d: ja %d leaves the program", pc, in.K)
			}
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K,
			unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K, unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			if pc+1+int(in.Jt) >= len(prog) || pc+1+int(in.Jf) >= len(prog) {
				return fmt.Errorf("%d: conditional jump leaves the program", pc)
			}
		default:
			return fmt.Errorf("%d: instruction %#x is not allowed in seccomp filters", pc, in.Code)
		}
	}
	if last := prog[len(prog)-1].Code; last&0x07 != unix.BPF_RET {
		return fmt.Errorf("the program ends with %#x, not a return", last)
	}
	return nil
}

// run interprets prog over d as the kernel would and returns the filter's
// result.
func run(prog []unix.SockFilter, d seccompData) (uint32, error) {
	ret, _, err := runCounted(prog, d)
	return ret, err
}

// runCounted is run that also counts the instructions executed.
func runCounted(prog []unix.SockFilter, d seccompData) (ret uint32, steps int, err error) {
	data := d.bytes()
	var a, x uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		steps++
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			if in.K > 60 {
				return 0, steps, fmt.Errorf("%d: load out of bounds", pc)
			}
			a = binary.NativeEndian.Uint32(data[in.K:])
		case unix.BPF_LD | unix.BPF_IMM:
			a = in.K
		case unix.BPF_ALU | unix.BPF_AND | unix.BPF_K:
			a &= in.K
		case unix.BPF_ALU | unix.BPF_OR | unix.BPF_K:
			a |= in.K
		case unix.BPF_MISC | unix.BPF_TAX:
			x = a
		case unix.BPF_MISC | unix.BPF_TXA:
			a = x
		case unix.BPF_JMP | unix.BPF_JA:
			pc += int(in.K)
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
			pc += branch(a == in.K, in)
		case unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K:
			pc += branch(a > in.K, in)
		case unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K:
			pc += branch(a >= in.K, in)
		case unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			pc += branch(a&in.K != 0, in)
		case unix.BPF_RET | unix.BPF_K:
			return in.K, steps, nil
		case unix.BPF_RET | unix.BPF_A:
			return a, steps, nil
		default:
			return 0, steps, fmt.Errorf("%d: unknown instruction %#x", pc, in.Code)
		}
	}
	return 0, steps, fmt.Errorf("the program ran off its end")
}

func branch(cond bool, in unix.SockFilter) int {
	if cond {
		return int(in.Jt)
	}
	return int(in.Jf)
}

// compile compiles cfg for native and checks the program as the kernel
// would.
func compile(t testing.TB, cfg *specs.LinuxSeccomp, native specs.Arch) []unix.SockFilter {
	t.Helper()
	prog, err := seccompbpf.Compile(cfg, native)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	if err := checkProgram(prog); err != nil {
		t.Fatalf("the kernel would reject the program: %v", err)
	}
	return prog
}

// mustRun is run for a program known to be valid.
func mustRun(t testing.TB, prog []unix.SockFilter, d seccompData) uint32 {
	t.Helper()
	ret, err := run(prog, d)
	if err != nil {
		t.Fatalf("running the filter on %+v: %v", d, err)
	}
	return ret
}

// Expected results, named as the filter returns them.
const (
	allow       = unix.SECCOMP_RET_ALLOW
	eperm       = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	enosys      = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	killProcess = unix.SECCOMP_RET_KILL_PROCESS
)

func errnoRet(e unix.Errno) uint32 { return unix.SECCOMP_RET_ERRNO | uint32(e) }

// describe names a filter result in test failures.
func describe(ret uint32) string {
	data := ret & unix.SECCOMP_RET_DATA
	switch ret & unix.SECCOMP_RET_ACTION_FULL {
	case unix.SECCOMP_RET_ALLOW:
		return "ALLOW"
	case unix.SECCOMP_RET_ERRNO:
		return fmt.Sprintf("ERRNO(%d %s)", data, unix.ErrnoName(unix.Errno(data)))
	case unix.SECCOMP_RET_KILL_PROCESS:
		return "KILL_PROCESS"
	case unix.SECCOMP_RET_KILL_THREAD:
		return "KILL_THREAD"
	case unix.SECCOMP_RET_TRAP:
		return "TRAP"
	case unix.SECCOMP_RET_TRACE:
		return fmt.Sprintf("TRACE(%d)", data)
	case unix.SECCOMP_RET_LOG:
		return "LOG"
	}
	return fmt.Sprintf("%#x", ret)
}

func uintp(v uint) *uint { return &v }

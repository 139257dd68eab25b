package seccompbpf_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	goruntime "runtime"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/runtime"
	"github.com/berth-dev/berth/internal/runtime/seccompbpf"
)

// x86Family are the architectures Docker's default profile allows on x86_64.
var x86Family = []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}

// dockerDefault is Docker's default profile as berth resolves it for a
// container with the default capabilities, for the x86 family whatever
// the host (its rules for amd64 alone may differ from the host's).
func dockerDefault(t testing.TB) *specs.LinuxSeccomp {
	t.Helper()
	spec, err := runtime.Generate(runtime.SpecOptions{Rootfs: t.TempDir(), Args: []string{"/bin/true"}})
	if err != nil {
		t.Fatalf("runtime.Generate: %v", err)
	}
	cfg := spec.Linux.Seccomp
	if cfg == nil {
		t.Fatal("the default spec has no seccomp profile")
	}
	cfg.Architectures = x86Family
	return cfg
}

// Syscall numbers of the tests, from arch/x86/entry/syscalls.
const (
	x32Bit = 0x40000000

	x64Read, x64Write, x64Getpid, x64Clone, x64Personality = 0, 1, 39, 56, 135
	x64ExitGroup, x64Unshare, x64Socket, x64Clone3         = 231, 272, 41, 435
	x64RtSigaction                                         = 13

	i386Read, i386Write, i386Clone, i386Personality, i386ExitGroup, i386Unshare = 3, 4, 120, 136, 252, 310

	x32RtSigaction = x32Bit | 512
)

func TestDockerDefaultProfile(t *testing.T) {
	prog := compile(t, dockerDefault(t), specs.ArchX86_64)
	t.Logf("Docker's default profile (x86_64, x86, x32): %d instructions", len(prog))

	x64 := func(nr uint32, args ...uint64) seccompData {
		d := seccompData{nr: nr, arch: unix.AUDIT_ARCH_X86_64}
		copy(d.args[:], args)
		return d
	}
	i386 := func(nr uint32, args ...uint64) seccompData {
		d := x64(nr, args...)
		d.arch = unix.AUDIT_ARCH_I386
		return d
	}
	const (
		sigchld    = 0x11
		cloneNewNS = 0x20000
		cloneNewU  = 0x10000000
		afInet     = 2
		afALG      = 38
		afVSock    = 40
	)
	tests := []struct {
		name string
		data seccompData
		want uint32
	}{
		{"x86_64 read", x64(x64Read), allow},
		{"x86_64 write", x64(x64Write), allow},
		{"x86_64 exit_group", x64(x64ExitGroup), allow},
		{"x86_64 getpid", x64(x64Getpid), allow},
		{"x86_64 unshare needs CAP_SYS_ADMIN", x64(x64Unshare), eperm},
		{"x86_64 clone without namespace flags", x64(x64Clone, sigchld), allow},
		{"x86_64 clone with CLONE_NEWNS", x64(x64Clone, sigchld|cloneNewNS), eperm},
		{"x86_64 clone with CLONE_NEWUSER", x64(x64Clone, cloneNewU), eperm},
		{"x86_64 clone flags in the high word do not matter", x64(x64Clone, 1<<40|sigchld), allow},
		{"x86_64 clone3 fails with ENOSYS", x64(x64Clone3), enosys},
		{"x86_64 personality(PER_LINUX)", x64(x64Personality, 0), allow},
		{"x86_64 personality(PER_LINUX32)", x64(x64Personality, 8), allow},
		{"x86_64 personality query", x64(x64Personality, 0xffffffff), allow},
		{"x86_64 personality(0x1234)", x64(x64Personality, 0x1234), eperm},
		{"x86_64 personality compares 64 bits", x64(x64Personality, 1<<32), eperm},
		{"x86_64 socket(AF_INET)", x64(x64Socket, afInet), allow},
		{"x86_64 socket(AF_ALG)", x64(x64Socket, afALG), eperm},
		{"x86_64 socket(39)", x64(x64Socket, 39), allow},
		{"x86_64 socket(AF_VSOCK)", x64(x64Socket, afVSock), eperm},
		{"x86_64 socket(41)", x64(x64Socket, 41), allow},
		{"x86_64 syscall newer than the profile", x64(1000), enosys},
		{"x86_64 highest number below x32", x64(x32Bit - 1), enosys},
		{"i386 read", i386(i386Read), allow},
		{"i386 write", i386(i386Write), allow},
		{"i386 exit_group", i386(i386ExitGroup), allow},
		{"i386 unshare", i386(i386Unshare), eperm},
		{"i386 clone", i386(i386Clone, sigchld), allow},
		{"i386 clone with CLONE_NEWUSER", i386(i386Clone, cloneNewU), eperm},
		{"i386 personality query", i386(i386Personality, 0xffffffff), allow},
		{"i386 personality compares 32 bits", i386(i386Personality, 1<<32), allow},
		{"i386 syscall newer than the profile", i386(1000), enosys},
		{"x32 write", x64(x32Bit | x64Write), allow},
		{"x32 rt_sigaction has its own number", x64(x32RtSigaction), allow},
		{"x32 x86_64-only number", x64(x32Bit | x64RtSigaction), eperm},
		{"x32 unshare", x64(x32Bit | x64Unshare), eperm},
		{"x32 clone with CLONE_NEWNS", x64(x32Bit|x64Clone, cloneNewNS), eperm},
		{"x32 clone", x64(x32Bit|x64Clone, sigchld), allow},
		{"x32 syscall newer than the profile", x64(x32Bit | 1000), enosys},
		{"aarch64 is not allowed", seccompData{nr: 64, arch: unix.AUDIT_ARCH_AARCH64}, killProcess},
		{"arm is not allowed", seccompData{nr: 4, arch: unix.AUDIT_ARCH_ARM}, killProcess},
		{"unknown architecture", seccompData{nr: 0, arch: 0}, killProcess},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustRun(t, prog, tt.data); got != tt.want {
				t.Errorf("got %s, want %s", describe(got), describe(tt.want))
			}
		})
	}
}

func TestArchitectures(t *testing.T) {
	// write on each ABI, and the numbers of getppid that a rule denies.
	profile := func(archs ...specs.Arch) *specs.LinuxSeccomp {
		return &specs.LinuxSeccomp{
			DefaultAction: specs.ActErrno,
			Architectures: archs,
			Syscalls: []specs.LinuxSyscall{
				{Names: []string{"write", "set_tls", "cacheflush"}, Action: specs.ActAllow},
			},
		}
	}
	var (
		x64Write  = seccompData{nr: 1, arch: unix.AUDIT_ARCH_X86_64}
		x32Write  = seccompData{nr: x32Bit | 1, arch: unix.AUDIT_ARCH_X86_64}
		i386Write = seccompData{nr: 4, arch: unix.AUDIT_ARCH_I386}
		a64Write  = seccompData{nr: 64, arch: unix.AUDIT_ARCH_AARCH64}
		armWrite  = seccompData{nr: 4, arch: unix.AUDIT_ARCH_ARM}
		armSetTLS = seccompData{nr: 0x0f0005, arch: unix.AUDIT_ARCH_ARM}
		armGetTLS = seccompData{nr: 0x0f0006, arch: unix.AUDIT_ARCH_ARM}
		armNew    = seccompData{nr: 1000, arch: unix.AUDIT_ARCH_ARM}
	)
	type check struct {
		data seccompData
		want uint32
	}
	tests := []struct {
		name   string
		cfg    *specs.LinuxSeccomp
		native specs.Arch
		checks []check
	}{
		{
			name: "native only when none listed", cfg: profile(), native: specs.ArchX86_64,
			checks: []check{{x64Write, allow}, {x32Write, killProcess}, {i386Write, killProcess}},
		},
		{
			name: "native always allowed", cfg: profile(specs.ArchX86), native: specs.ArchX86_64,
			checks: []check{{x64Write, allow}, {x32Write, killProcess}, {i386Write, allow}},
		},
		{
			name: "x32 listed", cfg: profile(specs.ArchX86_64, specs.ArchX32), native: specs.ArchX86_64,
			checks: []check{{x64Write, allow}, {x32Write, allow}, {i386Write, killProcess}},
		},
		{
			name: "other families are left out", cfg: profile(specs.ArchX86_64, specs.ArchAARCH64, specs.ArchS390X), native: specs.ArchX86_64,
			checks: []check{{x64Write, allow}, {a64Write, killProcess}},
		},
		{
			name: "aarch64 with arm", cfg: profile(specs.ArchAARCH64, specs.ArchARM, specs.ArchX86), native: specs.ArchAARCH64,
			checks: []check{
				{a64Write, allow}, {armWrite, allow}, {x64Write, killProcess}, {i386Write, killProcess},
				{armSetTLS, allow}, {armGetTLS, enosys}, {armNew, enosys},
			},
		},
		{
			name: "a 32-bit binary on a 64-bit kernel", cfg: profile(specs.ArchX86_64), native: specs.ArchX86,
			checks: []check{{i386Write, allow}, {x64Write, allow}, {x32Write, killProcess}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prog := compile(t, tt.cfg, tt.native)
			for _, c := range tt.checks {
				if got := mustRun(t, prog, c.data); got != c.want {
					t.Errorf("nr %#x arch %#x: got %s, want %s", c.data.nr, c.data.arch, describe(got), describe(c.want))
				}
			}
		})
	}
}

// rulesFor returns a profile for native x86_64 and x86 whose rules all name
// personality (135 on x86_64, 136 on i386).
func rulesFor(defaultAction specs.LinuxSeccompAction, rules ...specs.LinuxSyscall) *specs.LinuxSeccomp {
	for i := range rules {
		rules[i].Names = []string{"personality"}
	}
	return &specs.LinuxSeccomp{
		DefaultAction: defaultAction,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86},
		Syscalls:      rules,
	}
}

func TestArgumentComparisons(t *testing.T) {
	const hi = 1 << 32
	tests := []struct {
		name   string
		arg    specs.LinuxSeccompArg
		value  uint64
		want   bool // on x86_64
		want32 bool // on i386, where only the low 32 bits count
	}{
		{"EQ equal", specs.LinuxSeccompArg{Op: specs.OpEqualTo, Value: hi | 5}, hi | 5, true, true},
		{"EQ other high word", specs.LinuxSeccompArg{Op: specs.OpEqualTo, Value: hi | 5}, 5, false, true},
		{"NE other high word", specs.LinuxSeccompArg{Op: specs.OpNotEqual, Value: 5}, hi | 5, true, false},
		{"NE equal", specs.LinuxSeccompArg{Op: specs.OpNotEqual, Value: 5}, 5, false, false},
		{"GT high word decides", specs.LinuxSeccompArg{Op: specs.OpGreaterThan, Value: 0xffffffff}, hi, true, false},
		{"GT low word decides", specs.LinuxSeccompArg{Op: specs.OpGreaterThan, Value: hi | 7}, hi | 8, true, true},
		{"GT equal", specs.LinuxSeccompArg{Op: specs.OpGreaterThan, Value: hi | 7}, hi | 7, false, false},
		{"GT lower high word", specs.LinuxSeccompArg{Op: specs.OpGreaterThan, Value: 2 * hi}, hi | 0xffffffff, false, true},
		{"GE equal", specs.LinuxSeccompArg{Op: specs.OpGreaterEqual, Value: hi | 7}, hi | 7, true, true},
		{"GE below", specs.LinuxSeccompArg{Op: specs.OpGreaterEqual, Value: hi | 7}, 7, false, true},
		{"LT high word decides", specs.LinuxSeccompArg{Op: specs.OpLessThan, Value: hi}, 0xffffffff, true, false},
		{"LT above", specs.LinuxSeccompArg{Op: specs.OpLessThan, Value: 10}, hi | 1, false, true},
		{"LT equal", specs.LinuxSeccompArg{Op: specs.OpLessThan, Value: hi | 10}, hi | 10, false, false},
		{"LE equal", specs.LinuxSeccompArg{Op: specs.OpLessEqual, Value: hi | 10}, hi | 10, true, true},
		{"LE above", specs.LinuxSeccompArg{Op: specs.OpLessEqual, Value: hi | 10}, hi | 11, false, false},
		{"MASKED_EQ high bits", specs.LinuxSeccompArg{Op: specs.OpMaskedEqual, Value: 0xff00000000ff, ValueTwo: 0x120000000034}, 0x1234abcdef34, true, true},
		{"MASKED_EQ high bits differ", specs.LinuxSeccompArg{Op: specs.OpMaskedEqual, Value: 0xff00000000ff, ValueTwo: 0x120000000034}, 0x1334abcdef34, false, true},
		{"MASKED_EQ low bits differ", specs.LinuxSeccompArg{Op: specs.OpMaskedEqual, Value: 0xff00000000ff, ValueTwo: 0x120000000034}, 0x123400000035, false, false},
		{"MASKED_EQ zero", specs.LinuxSeccompArg{Op: specs.OpMaskedEqual, Value: 0x7e020000}, 0x11, true, true},
		{"MASKED_EQ impossible", specs.LinuxSeccompArg{Op: specs.OpMaskedEqual, Value: 0xf, ValueTwo: hi | 0x1}, hi | 0x1, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, index := range []uint{0, 5} {
				arg := tt.arg
				arg.Index = index
				prog := compile(t, rulesFor(specs.ActErrno, specs.LinuxSyscall{Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{arg}}), specs.ArchX86_64)
				for _, abi := range []struct {
					arch uint32
					nr   uint32
					want bool
				}{
					{unix.AUDIT_ARCH_X86_64, x64Personality, tt.want},
					{unix.AUDIT_ARCH_I386, i386Personality, tt.want32},
				} {
					d := seccompData{nr: abi.nr, arch: abi.arch}
					d.args[index] = tt.value
					d.args[5-index] = ^tt.value // other arguments must not matter
					want := eperm
					if abi.want {
						want = allow
					}
					if got := mustRun(t, prog, d); got != want {
						t.Errorf("arch %#x, argument %d = %#x: got %s, want %s", abi.arch, index, tt.value, describe(got), describe(want))
					}
				}
			}
		})
	}
}

// compare is the meaning of one condition, for checking the filter.
func compare(arg specs.LinuxSeccompArg, v uint64, args32 bool) bool {
	want, mask := arg.Value, ^uint64(0)
	if arg.Op == specs.OpMaskedEqual {
		want, mask = arg.ValueTwo, arg.Value
	}
	if args32 {
		v, want, mask = uint64(uint32(v)), uint64(uint32(want)), uint64(uint32(mask))
	}
	switch arg.Op {
	case specs.OpEqualTo:
		return v == want
	case specs.OpNotEqual:
		return v != want
	case specs.OpLessThan:
		return v < want
	case specs.OpLessEqual:
		return v <= want
	case specs.OpGreaterEqual:
		return v >= want
	case specs.OpGreaterThan:
		return v > want
	case specs.OpMaskedEqual:
		return v&mask == want
	}
	panic("unknown operator " + arg.Op)
}

// TestArgumentBoundaries compares the filter with compare for every
// operator on values around the word boundaries.
func TestArgumentBoundaries(t *testing.T) {
	values := []uint64{0, 1, 2, 0x7fffffff, 0xfffffffe, 0xffffffff, 1 << 32, 1<<32 | 1, 1<<32 | 0xffffffff,
		2 << 32, 0x7fffffff_ffffffff, 0x80000000_00000000, 0xffffffff_fffffffe, 0xffffffff_ffffffff}
	ops := []specs.LinuxSeccompOperator{specs.OpEqualTo, specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual,
		specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual}
	for _, op := range ops {
		t.Run(string(op), func(t *testing.T) {
			for _, value := range values {
				arg := specs.LinuxSeccompArg{Index: 2, Op: op, Value: value, ValueTwo: value & 0xf0000000_0000000f}
				prog := compile(t, rulesFor(specs.ActErrno, specs.LinuxSyscall{Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{arg}}), specs.ArchX86_64)
				for _, v := range values {
					for _, abi := range []struct {
						arch, nr uint32
						args32   bool
					}{{unix.AUDIT_ARCH_X86_64, x64Personality, false}, {unix.AUDIT_ARCH_I386, i386Personality, true}} {
						d := seccompData{nr: abi.nr, arch: abi.arch}
						d.args[2] = v
						want := eperm
						if compare(arg, v, abi.args32) {
							want = allow
						}
						if got := mustRun(t, prog, d); got != want {
							t.Errorf("%s %#x (two %#x), argument %#x, 32-bit %v: got %s, want %s",
								op, arg.Value, arg.ValueTwo, v, abi.args32, describe(got), describe(want))
						}
					}
				}
			}
		})
	}
}

func TestRuleOrder(t *testing.T) {
	arg0 := func(op specs.LinuxSeccompOperator, v uint64) []specs.LinuxSeccompArg {
		return []specs.LinuxSeccompArg{{Index: 0, Op: op, Value: v}}
	}
	cfg := rulesFor(specs.ActErrno,
		specs.LinuxSyscall{Action: specs.ActErrno, ErrnoRet: uintp(5), Args: arg0(specs.OpEqualTo, 1)},
		specs.LinuxSyscall{Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{
			{Index: 0, Op: specs.OpLessThan, Value: 10},
			{Index: 1, Op: specs.OpEqualTo, Value: 7},
		}},
		specs.LinuxSyscall{Action: specs.ActErrno, ErrnoRet: uintp(7)},
		specs.LinuxSyscall{Action: specs.ActAllow}, // never reached
	)
	prog := compile(t, cfg, specs.ArchX86_64)
	tests := []struct {
		name       string
		arg0, arg1 uint64
		want       uint32
	}{
		{"first rule wins", 1, 7, errnoRet(5)},
		{"second rule needs both conditions", 3, 7, allow},
		{"second rule fails its second condition", 3, 8, errnoRet(7)},
		{"no conditional rule matches", 20, 7, errnoRet(7)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := seccompData{nr: x64Personality, arch: unix.AUDIT_ARCH_X86_64, args: [6]uint64{tt.arg0, tt.arg1}}
			if got := mustRun(t, prog, d); got != tt.want {
				t.Errorf("got %s, want %s", describe(got), describe(tt.want))
			}
		})
	}
}

func TestActions(t *testing.T) {
	tests := []struct {
		name            string
		action          specs.LinuxSeccompAction
		errnoRet        *uint
		defaultErrnoRet *uint
		want            uint32
	}{
		{"allow", specs.ActAllow, nil, nil, allow},
		{"errno defaults to EPERM", specs.ActErrno, nil, nil, eperm},
		{"errno of the rule", specs.ActErrno, uintp(uint(unix.EACCES)), uintp(uint(unix.EIO)), errnoRet(unix.EACCES)},
		{"defaultErrnoRet is for the default action only", specs.ActErrno, nil, uintp(uint(unix.EIO)), eperm},
		{"kill is kill thread", specs.ActKill, nil, nil, unix.SECCOMP_RET_KILL_THREAD},
		{"kill thread", specs.ActKillThread, nil, nil, unix.SECCOMP_RET_KILL_THREAD},
		{"kill process", specs.ActKillProcess, nil, nil, unix.SECCOMP_RET_KILL_PROCESS},
		{"trap", specs.ActTrap, nil, nil, unix.SECCOMP_RET_TRAP},
		{"trace defaults to EPERM", specs.ActTrace, nil, nil, unix.SECCOMP_RET_TRACE | uint32(unix.EPERM)},
		{"trace with a message", specs.ActTrace, uintp(42), nil, unix.SECCOMP_RET_TRACE | 42},
		{"log", specs.ActLog, nil, nil, unix.SECCOMP_RET_LOG},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &specs.LinuxSeccomp{
				DefaultAction:   specs.ActErrno,
				DefaultErrnoRet: tt.defaultErrnoRet,
				Syscalls: []specs.LinuxSyscall{
					{Names: []string{"getppid"}, Action: tt.action, ErrnoRet: tt.errnoRet},
					{Names: []string{"read"}, Action: specs.ActAllow},
				},
			}
			prog := compile(t, cfg, specs.ArchX86_64)
			if got := mustRun(t, prog, seccompData{nr: 110, arch: unix.AUDIT_ARCH_X86_64}); got != tt.want {
				t.Errorf("getppid: got %s, want %s", describe(got), describe(tt.want))
			}
			wantDefault := eperm
			if tt.defaultErrnoRet != nil {
				wantDefault = errnoRet(unix.Errno(*tt.defaultErrnoRet))
			}
			if got := mustRun(t, prog, seccompData{nr: x64Write, arch: unix.AUDIT_ARCH_X86_64}); got != wantDefault {
				t.Errorf("write (default action): got %s, want %s", describe(got), describe(wantDefault))
			}
		})
	}
}

func TestENOSYSAboveProfile(t *testing.T) {
	tests := []struct {
		name          string
		defaultAction specs.LinuxSeccompAction
		names         []string
		nr            uint32
		want          uint32
	}{
		{"errno default", specs.ActErrno, []string{"read", "write"}, 2, enosys},
		{"errno default below the largest name", specs.ActErrno, []string{"read", "openat"}, 2, eperm},
		{"kill default", specs.ActKillProcess, []string{"read"}, 1000, enosys},
		{"allow default", specs.ActAllow, []string{"read"}, 1000, allow},
		{"log default", specs.ActLog, []string{"read"}, 1000, unix.SECCOMP_RET_LOG},
		{"trace default", specs.ActTrace, []string{"read"}, 1000, unix.SECCOMP_RET_TRACE | uint32(unix.EPERM)},
		{"no names", specs.ActErrno, nil, 1000, eperm},
		{"only unknown names", specs.ActErrno, []string{"no_such_syscall"}, 1000, eperm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &specs.LinuxSeccomp{DefaultAction: tt.defaultAction}
			if tt.names != nil {
				cfg.Syscalls = []specs.LinuxSyscall{{Names: tt.names, Action: specs.ActAllow}}
			}
			prog := compile(t, cfg, specs.ArchX86_64)
			if got := mustRun(t, prog, seccompData{nr: tt.nr, arch: unix.AUDIT_ARCH_X86_64}); got != tt.want {
				t.Errorf("got %s, want %s", describe(got), describe(tt.want))
			}
		})
	}
}

// firstX86_64Syscalls are the x86_64 syscalls numbered 0 to 19.
func firstX86_64Syscalls() []string {
	return []string{"read", "write", "open", "close", "stat", "fstat", "lstat", "poll", "lseek", "mmap",
		"mprotect", "munmap", "brk", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "ioctl", "pread64", "pwrite64", "readv"}
}

// manyConditions returns a profile with n conditional rules on each of
// names: the one for value v of argument 0 fails with errno v+1.
func manyConditions(defaultAction specs.LinuxSeccompAction, names []string, n int) *specs.LinuxSeccomp {
	cfg := &specs.LinuxSeccomp{DefaultAction: defaultAction}
	for _, name := range names {
		for v := range n {
			cfg.Syscalls = append(cfg.Syscalls, specs.LinuxSyscall{
				Names:    []string{name},
				Action:   specs.ActErrno,
				ErrnoRet: uintp(uint(v + 1)),
				Args:     []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpEqualTo, Value: uint64(v)}},
			})
		}
	}
	return cfg
}

func TestLongJumps(t *testing.T) {
	const perSyscall = 12
	names := firstX86_64Syscalls()
	cfg := manyConditions(specs.ActErrno, names, perSyscall)
	prog := compile(t, cfg, specs.ArchX86_64)
	// The first jumps of the search must cross most of the program.
	if len(prog) < 3*256 {
		t.Fatalf("program has %d instructions; the test needs jumps longer than 255", len(prog))
	}
	long := 0
	for _, in := range prog {
		if in.Code == unix.BPF_JMP|unix.BPF_JA && in.K > 255 {
			long++
		}
	}
	if long == 0 {
		t.Fatalf("no long jump in a program of %d instructions", len(prog))
	}
	t.Logf("%d instructions, %d long jumps", len(prog), long)
	for nr := range uint32(len(names)) {
		for v := range uint64(perSyscall + 2) {
			want := eperm
			if v < perSyscall {
				want = errnoRet(unix.Errno(v + 1))
			}
			d := seccompData{nr: nr, arch: unix.AUDIT_ARCH_X86_64, args: [6]uint64{v}}
			if got := mustRun(t, prog, d); got != want {
				t.Errorf("%s(%d): got %s, want %s", names[nr], v, describe(got), describe(want))
			}
		}
	}
	if got := mustRun(t, prog, seccompData{nr: 1000, arch: unix.AUDIT_ARCH_X86_64}); got != enosys {
		t.Errorf("1000: got %s, want ENOSYS", describe(got))
	}
	checkAgainstModel(t, cfg, specs.ArchX86_64, rand.New(rand.NewPCG(5, 6)))
}

func TestErrors(t *testing.T) {
	tooLarge := manyConditions(specs.ActErrno, firstX86_64Syscalls(), 100)
	tests := []struct {
		name   string
		cfg    *specs.LinuxSeccomp
		native specs.Arch
		class  error
		text   string
	}{
		{"no configuration", nil, specs.ArchX86_64, errdefs.ErrInvalidArgument, "no configuration"},
		{"unsupported host", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}, specs.ArchS390X, errdefs.ErrNotImplemented, "--runtime runc"},
		{"unknown architecture", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{"SCMP_ARCH_Z80"}}, specs.ArchX86_64, errdefs.ErrInvalidArgument, "SCMP_ARCH_Z80"},
		{"no default action", &specs.LinuxSeccomp{}, specs.ArchX86_64, errdefs.ErrInvalidArgument, "defaultAction"},
		{"unknown action", &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_MAYBE"}, specs.ArchX86_64, errdefs.ErrInvalidArgument, "SCMP_ACT_MAYBE"},
		{"notify", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"mount"}, Action: specs.ActNotify},
		}}, specs.ArchX86_64, errdefs.ErrNotImplemented, "--runtime runc"},
		{"argument index", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}},
		}}, specs.ArchX86_64, errdefs.ErrInvalidArgument, "index 6"},
		{"unknown operator", &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Op: "SCMP_CMP_ODD"}}},
		}}, specs.ArchX86_64, errdefs.ErrInvalidArgument, "SCMP_CMP_ODD"},
		{"errno too large", &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: uintp(1 << 16)}, specs.ArchX86_64, errdefs.ErrInvalidArgument, "16 bits"},
		{"too many instructions", tooLarge, specs.ArchX86_64, errdefs.ErrInvalidArgument, "4096"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := seccompbpf.Compile(tt.cfg, tt.native)
			if err == nil {
				t.Fatal("Compile succeeded")
			}
			if !errors.Is(err, tt.class) || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("got %v, want a %v error mentioning %q", err, tt.class, tt.text)
			}
		})
	}
}

func TestUnknownNamesAreSkipped(t *testing.T) {
	cfg := &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: x86Family,
		Syscalls: []specs.LinuxSyscall{
			// arch_prctl is x86_64 only, socketcall i386 only, set_tls arm only.
			{Names: []string{"no_such_syscall", "arch_prctl", "socketcall", "set_tls", "write"}, Action: specs.ActAllow},
		},
	}
	prog := compile(t, cfg, specs.ArchX86_64)
	for _, d := range []seccompData{
		{nr: 158, arch: unix.AUDIT_ARCH_X86_64},          // arch_prctl
		{nr: 102, arch: unix.AUDIT_ARCH_I386},            // socketcall
		{nr: x32Bit | 158, arch: unix.AUDIT_ARCH_X86_64}, // arch_prctl on x32
	} {
		if got := mustRun(t, prog, d); got != allow {
			t.Errorf("nr %#x arch %#x: got %s, want ALLOW", d.nr, d.arch, describe(got))
		}
	}
	// 102 is getuid on x86_64, not named.
	if got := mustRun(t, prog, seccompData{nr: 102, arch: unix.AUDIT_ARCH_X86_64}); got != eperm {
		t.Errorf("x86_64 getuid: got %s, want EPERM", describe(got))
	}
}

// TestI386Multiplexers checks that, as with libseccomp, a rule for a
// socket or SysV IPC syscall also applies when an i386 program makes it
// through socketcall(2) or ipc(2).
func TestI386Multiplexers(t *testing.T) {
	const (
		socketcall, ipc      = 102, 117
		sysSocket, sysSend   = 1, 9
		sysConnect, ipcShmat = 3, 21
		i386Socket           = 359
		afUnix, afInet       = 1, 2
	)
	cfg := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"socket"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EAFNOSUPPORT)),
				Args: []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpEqualTo, Value: afInet}}},
			{Names: []string{"send", "shmat"}, Action: specs.ActErrno},
		},
	}
	prog := compile(t, cfg, specs.ArchX86_64)
	tests := []struct {
		name string
		nr   uint32
		arg0 uint64
		want uint32
	}{
		{"socket(AF_INET)", i386Socket, afInet, errnoRet(unix.EAFNOSUPPORT)},
		{"socket(AF_UNIX)", i386Socket, afUnix, allow},
		// The domain is in memory, out of the filter's reach: libseccomp
		// drops the condition and matches the call number alone.
		{"socketcall(SYS_SOCKET)", socketcall, sysSocket, errnoRet(unix.EAFNOSUPPORT)},
		{"socketcall(SYS_CONNECT)", socketcall, sysConnect, allow},
		{"send exists only through socketcall", socketcall, sysSend, eperm},
		{"ipc(SHMAT)", ipc, ipcShmat, eperm},
		{"ipc(SEMOP)", ipc, 1, allow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := seccompData{nr: tt.nr, arch: unix.AUDIT_ARCH_I386, args: [6]uint64{tt.arg0}}
			if got := mustRun(t, prog, d); got != tt.want {
				t.Errorf("got %s, want %s", describe(got), describe(tt.want))
			}
		})
	}
	// x86_64 has no multiplexer: 102 is getuid there.
	if got := mustRun(t, prog, seccompData{nr: 102, arch: unix.AUDIT_ARCH_X86_64, args: [6]uint64{sysSocket}}); got != allow {
		t.Errorf("x86_64 getuid: got %s, want ALLOW", describe(got))
	}
}

func TestNativeArch(t *testing.T) {
	want := map[string]specs.Arch{
		"amd64": specs.ArchX86_64, "arm64": specs.ArchAARCH64, "386": specs.ArchX86, "arm": specs.ArchARM,
	}[goruntime.GOARCH]
	if got := seccompbpf.NativeArch(); got != want {
		t.Errorf("NativeArch() = %q on %s, want %q", got, goruntime.GOARCH, want)
	}
}

// TestDockerDefaultSizes reports the program sizes of Docker's default
// profile and checks that a syscall costs few instructions.
func TestDockerDefaultSizes(t *testing.T) {
	cfg := dockerDefault(t)
	for _, archs := range [][]specs.Arch{{specs.ArchX86_64}, x86Family} {
		cfg.Architectures = archs
		prog := compile(t, cfg, specs.ArchX86_64)
		t.Logf("%v: %d instructions", archs, len(prog))
	}
	prog := compile(t, cfg, specs.ArchX86_64)
	for _, abi := range []struct {
		name  string
		arch  uint32
		first uint32
	}{{"x86_64", unix.AUDIT_ARCH_X86_64, 0}, {"i386", unix.AUDIT_ARCH_I386, 0}, {"x32", unix.AUDIT_ARCH_X86_64, x32Bit}} {
		longest := 0
		for nr := range uint32(600) {
			longest = max(longest, steps(t, prog, seccompData{nr: abi.first + nr, arch: abi.arch}))
		}
		t.Logf("%s: at most %d instructions run for syscalls 0 to 599 (arguments 0)", abi.name, longest)
		// Argument rules aside, a syscall costs the architecture checks,
		// two loads, a search of about log2(ranges) jumps and a return.
		if longest > 25 {
			t.Errorf("%s: a syscall runs %d instructions", abi.name, longest)
		}
	}
}

// steps counts the instructions the filter runs for d.
func steps(t *testing.T, prog []unix.SockFilter, d seccompData) int {
	t.Helper()
	_, n, err := runCounted(prog, d)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func BenchmarkCompileDockerDefault(b *testing.B) {
	cfg := dockerDefault(b)
	for b.Loop() {
		if _, err := seccompbpf.Compile(cfg, specs.ArchX86_64); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleCompile() {
	cfg := &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "write", "exit_group"}, Action: specs.ActAllow},
		},
	}
	prog, err := seccompbpf.Compile(cfg, specs.ArchX86_64)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(prog) > 0)
	// Output: true
}

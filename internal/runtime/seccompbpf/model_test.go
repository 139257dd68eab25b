package seccompbpf_test

import (
	"math/rand/v2"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/runtime/seccompbpf"
)

// The tests below check the compiled filter against a direct reading of
// the configuration's meaning (a model), for every syscall number of
// interest and many argument values.

// modelABI is what the model knows of a syscall ABI.
type modelABI struct {
	arch        specs.Arch
	audit       uint32
	first, last uint32 // syscall numbers under audit
	args32      bool
	private     uint32 // ARM's private syscalls start here
	family      int
}

func modelABIs() []modelABI {
	return []modelABI{
		{arch: specs.ArchX86_64, audit: unix.AUDIT_ARCH_X86_64, first: 0, last: x32Bit - 1, family: 1},
		{arch: specs.ArchX32, audit: unix.AUDIT_ARCH_X86_64, first: x32Bit, last: 0xffffffff, args32: true, family: 1},
		{arch: specs.ArchX86, audit: unix.AUDIT_ARCH_I386, last: 0xffffffff, args32: true, family: 1},
		{arch: specs.ArchAARCH64, audit: unix.AUDIT_ARCH_AARCH64, last: 0xffffffff, family: 2},
		{arch: specs.ArchARM, audit: unix.AUDIT_ARCH_ARM, last: 0xffffffff, args32: true, private: 0x0f0000, family: 2},
	}
}

func modelABIOf(arch specs.Arch) modelABI {
	i := slices.IndexFunc(modelABIs(), func(m modelABI) bool { return m.arch == arch })
	return modelABIs()[i]
}

func modelRet(act specs.LinuxSeccompAction, errno *uint) uint32 {
	data := uint32(unix.EPERM)
	if errno != nil {
		data = uint32(*errno)
	}
	return map[specs.LinuxSeccompAction]uint32{
		specs.ActAllow:       unix.SECCOMP_RET_ALLOW,
		specs.ActErrno:       unix.SECCOMP_RET_ERRNO | data,
		specs.ActKill:        unix.SECCOMP_RET_KILL_THREAD,
		specs.ActKillThread:  unix.SECCOMP_RET_KILL_THREAD,
		specs.ActKillProcess: unix.SECCOMP_RET_KILL_PROCESS,
		specs.ActTrap:        unix.SECCOMP_RET_TRAP,
		specs.ActTrace:       unix.SECCOMP_RET_TRACE | data,
		specs.ActLog:         unix.SECCOMP_RET_LOG,
	}[act]
}

// model is what a filter must do, read from its configuration.
type model struct {
	cfg    *specs.LinuxSeccomp
	native modelABI
	// numbers[arch][i] are the numbers the names of cfg.Syscalls[i]
	// resolve to on arch.
	numbers map[specs.Arch][][]uint32
	// muxed[i] are the socketcall(2) and ipc(2) calls of the names of
	// cfg.Syscalls[i], on i386.
	muxed [][]muxedCall
}

type muxedCall struct {
	nr   uint32 // of socketcall or ipc on i386
	call uint64
}

// i386Multiplexed maps the socket and SysV IPC syscalls to the
// multiplexer i386 programs may call them through (linux/net.h and
// linux/ipc.h).
func i386Multiplexed() map[string]muxedCall {
	const socketcall, ipc = 102, 117
	return map[string]muxedCall{
		"socket": {socketcall, 1}, "bind": {socketcall, 2}, "connect": {socketcall, 3}, "listen": {socketcall, 4},
		"accept": {socketcall, 5}, "getsockname": {socketcall, 6}, "getpeername": {socketcall, 7},
		"socketpair": {socketcall, 8}, "send": {socketcall, 9}, "recv": {socketcall, 10}, "sendto": {socketcall, 11},
		"recvfrom": {socketcall, 12}, "shutdown": {socketcall, 13}, "setsockopt": {socketcall, 14},
		"getsockopt": {socketcall, 15}, "sendmsg": {socketcall, 16}, "recvmsg": {socketcall, 17},
		"accept4": {socketcall, 18}, "recvmmsg": {socketcall, 19}, "sendmmsg": {socketcall, 20},
		"semop": {ipc, 1}, "semget": {ipc, 2}, "semctl": {ipc, 3}, "semtimedop": {ipc, 4},
		"msgsnd": {ipc, 11}, "msgrcv": {ipc, 12}, "msgget": {ipc, 13}, "msgctl": {ipc, 14},
		"shmat": {ipc, 21}, "shmdt": {ipc, 22}, "shmget": {ipc, 23}, "shmctl": {ipc, 24},
	}
}

func newModel(cfg *specs.LinuxSeccomp, native specs.Arch) *model {
	m := &model{cfg: cfg, native: modelABIOf(native), numbers: map[specs.Arch][][]uint32{}}
	multiplexed := i386Multiplexed()
	for _, sc := range cfg.Syscalls {
		var calls []muxedCall
		for _, name := range sc.Names {
			if c, ok := multiplexed[name]; ok {
				calls = append(calls, c)
			}
		}
		m.muxed = append(m.muxed, calls)
	}
	for _, abi := range modelABIs() {
		for _, sc := range cfg.Syscalls {
			var nrs []uint32
			for _, name := range sc.Names {
				if nr, ok := seccompbpf.SyscallNumber(abi.arch, name); ok {
					nrs = append(nrs, nr)
				}
			}
			m.numbers[abi.arch] = append(m.numbers[abi.arch], nrs)
		}
	}
	return m
}

// result is what the filter must return for d.
func (m *model) result(d seccompData) uint32 {
	var abi *modelABI
	for _, candidate := range modelABIs() {
		if candidate.audit == d.arch && d.nr >= candidate.first && d.nr <= candidate.last {
			abi = &candidate
			break
		}
	}
	if abi == nil || abi.family != m.native.family || (abi.arch != m.native.arch && !slices.Contains(m.cfg.Architectures, abi.arch)) {
		return unix.SECCOMP_RET_KILL_PROCESS
	}
	holds := func(args []specs.LinuxSeccompArg) bool {
		return !slices.ContainsFunc(args, func(arg specs.LinuxSeccompArg) bool {
			return !compare(arg, d.args[arg.Index], abi.args32)
		})
	}
	named := false
	for i, sc := range m.cfg.Syscalls {
		if slices.Contains(m.numbers[abi.arch][i], d.nr) {
			named = true
			if holds(sc.Args) {
				return modelRet(sc.Action, sc.ErrnoRet)
			}
		}
		if abi.arch != specs.ArchX86 {
			continue
		}
		// Through the multiplexer, the call number replaces the first
		// argument, as libseccomp has it.
		for _, c := range m.muxed[i] {
			if c.nr != d.nr {
				continue
			}
			named = true
			args := []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpEqualTo, Value: c.call}}
			for _, arg := range sc.Args {
				if arg.Index != 0 {
					args = append(args, arg)
				}
			}
			if holds(args) {
				return modelRet(sc.Action, sc.ErrnoRet)
			}
		}
	}
	if act := m.cfg.DefaultAction; act != specs.ActAllow && act != specs.ActLog && act != specs.ActTrace && !named {
		largest, any := uint32(0), false
		for _, nrs := range m.numbers[abi.arch] {
			for _, nr := range nrs {
				if abi.private == 0 || nr < abi.private {
					largest, any = max(largest, nr), true
				}
			}
		}
		if any && d.nr > largest {
			return enosys
		}
	}
	return modelRet(m.cfg.DefaultAction, m.cfg.DefaultErrnoRet)
}

// interestingNumbers are the syscall numbers where the filter's outcome
// may change: those cfg names on every ABI, their neighbours, and the ends
// of each ABI's range.
func interestingNumbers(cfg *specs.LinuxSeccomp) []seccompData {
	var out []seccompData
	for _, m := range modelABIs() {
		nrs := []uint32{m.first, m.first + 1, m.first + 1000, m.last, m.first + 0x0f0000, m.first + 0x0f0006}
		if m.arch == specs.ArchX86 {
			nrs = append(nrs, 102, 117) // socketcall, ipc
		}
		for _, sc := range cfg.Syscalls {
			for _, name := range sc.Names {
				if nr, ok := seccompbpf.SyscallNumber(m.arch, name); ok {
					nrs = append(nrs, nr-1, nr, nr+1)
				}
			}
		}
		for _, nr := range nrs {
			if nr >= m.first && nr <= m.last {
				out = append(out, seccompData{nr: nr, arch: m.audit})
			}
		}
	}
	return out
}

// argumentValues are the values tried for each argument.
func argumentValues() []uint64 {
	return []uint64{0, 1, 3, 8, 9, 0x11, 38, 39, 40, 41, 0x20000, 0x7e020000, 0xffffffff,
		1 << 32, 1<<32 | 8, 0xffffffff_ffffffff, 0x80000000_00000000}
}

// checkAgainstModel runs the filter over the interesting numbers and
// argument values, compares each result with the model, and returns the
// program's size.
func checkAgainstModel(t *testing.T, cfg *specs.LinuxSeccomp, native specs.Arch, rng *rand.Rand) int {
	t.Helper()
	prog := compile(t, cfg, native)
	m := newModel(cfg, native)
	values := argumentValues()
	failures := 0
	for _, d := range interestingNumbers(cfg) {
		for range 12 {
			for i := range d.args {
				d.args[i] = values[rng.IntN(len(values))]
			}
			want := m.result(d)
			if got := mustRun(t, prog, d); got != want {
				t.Errorf("arch %#x nr %#x args %#x: got %s, want %s", d.arch, d.nr, d.args, describe(got), describe(want))
				if failures++; failures > 10 {
					t.FailNow()
				}
			}
		}
	}
	return len(prog)
}

func TestDockerDefaultMatchesModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tt := range []struct {
		native specs.Arch
		archs  []specs.Arch
	}{
		{specs.ArchX86_64, x86Family},
		{specs.ArchX86_64, []specs.Arch{specs.ArchX86_64}},
		{specs.ArchAARCH64, []specs.Arch{specs.ArchAARCH64, specs.ArchARM}},
		{specs.ArchARM, nil},
		{specs.ArchX86, nil},
	} {
		t.Run(string(tt.native), func(t *testing.T) {
			cfg := dockerDefault(t)
			cfg.Architectures = tt.archs
			checkAgainstModel(t, cfg, tt.native, rng)
		})
	}
}

// TestRandomProfilesMatchModel compiles random profiles of overlapping
// rules with every action and operator.
func TestRandomProfilesMatchModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	names := []string{"read", "write", "personality", "clone", "socket", "getppid", "set_tls", "socketcall",
		"arch_prctl", "open", "no_such_syscall", "rt_sigaction", "ioctl", "openat", "clone3", "send", "connect",
		"ipc", "semop", "shmat"}
	actions := []specs.LinuxSeccompAction{specs.ActAllow, specs.ActErrno, specs.ActKill, specs.ActKillProcess,
		specs.ActTrap, specs.ActTrace, specs.ActLog}
	ops := []specs.LinuxSeccompOperator{specs.OpEqualTo, specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual,
		specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual}
	values := argumentValues()
	pick := func(n int) int { return rng.IntN(n) }
	errno := func() *uint {
		if pick(2) == 0 {
			return nil
		}
		return uintp(uint(1 + pick(200)))
	}
	largest := 0
	for i := range 300 {
		native := []specs.Arch{specs.ArchX86_64, specs.ArchAARCH64, specs.ArchX86, specs.ArchARM}[pick(4)]
		cfg := &specs.LinuxSeccomp{DefaultAction: actions[pick(len(actions))], DefaultErrnoRet: errno()}
		for _, arch := range []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32, specs.ArchAARCH64, specs.ArchARM} {
			if pick(2) == 0 {
				cfg.Architectures = append(cfg.Architectures, arch)
			}
		}
		rules := 1 + pick(8)
		if i%10 == 0 {
			rules = 40 // a program long enough for long jumps
		}
		for range rules {
			sc := specs.LinuxSyscall{Action: actions[pick(len(actions))], ErrnoRet: errno()}
			for range 1 + pick(3) {
				sc.Names = append(sc.Names, names[pick(len(names))])
			}
			for range pick(3) {
				sc.Args = append(sc.Args, specs.LinuxSeccompArg{
					Index:    uint(pick(6)),
					Op:       ops[pick(len(ops))],
					Value:    values[pick(len(values))],
					ValueTwo: values[pick(len(values))],
				})
			}
			cfg.Syscalls = append(cfg.Syscalls, sc)
		}
		if failed := !t.Run("", func(t *testing.T) { largest = max(largest, checkAgainstModel(t, cfg, native, rng)) }); failed {
			t.Fatalf("profile %d on %s: %+v", i, native, cfg)
		}
	}
	if largest <= 512 {
		t.Errorf("the largest program has %d instructions; some should need long jumps", largest)
	}
}

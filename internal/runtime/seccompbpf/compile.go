package seccompbpf

import (
	"fmt"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Offsets in struct seccomp_data. Every architecture this package supports
// is little-endian, so the low word of an argument comes first.
const (
	offsetNr   = 0
	offsetArch = 4
	offsetArgs = 16
)

// retENOSYS is what syscalls newer than the profile get (see Compile).
const retENOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)

// maxArgs is the number of syscall arguments seccomp_data carries.
const maxArgs = 6

// rule is one entry of the profile's syscalls with its action resolved.
type rule struct {
	ret  uint32
	args []specs.LinuxSeccompArg
}

// outcome is what the filter does for a syscall number: the rules with
// argument conditions, tried in order, and ret when none matches (or when
// there are none).
type outcome struct {
	rules []*rule
	ret   uint32
	// args32 is set when arguments are compared on their low 32 bits.
	args32 bool
}

// interval is a range of syscall numbers, inclusive, with one outcome.
type interval struct {
	first, last uint32
	outcome
}

// Compile builds the seccomp filter for cfg on a host whose architecture
// is native (as NativeArch reports it).
//
// The filter allows the native architecture and those of cfg.Architectures
// that the native kernel can run (x86 and x32 beside x86_64, arm beside
// aarch64); like libseccomp, the native one is always included. Listed
// architectures of other families cannot reach the filter and are left out;
// a syscall of any architecture not allowed kills the process.
//
// Unless the default action is ALLOW, LOG or TRACE, the syscall numbers
// the profile does not name and that are above the largest one it names
// (per architecture; ARM's private syscalls aside) fail with ENOSYS, as
// with runc: a C library then falls back from a syscall the profile does
// not know yet instead of failing with the default EPERM.
//
// Errors are of class errdefs.ErrInvalidArgument for a configuration
// that cannot be compiled and errdefs.ErrNotImplemented for what only an
// external runtime offers (seccomp notify, other architectures).
func Compile(cfg *specs.LinuxSeccomp, native specs.Arch) ([]unix.SockFilter, error) {
	if cfg == nil {
		return nil, errdefs.InvalidArgument("seccomp: no configuration to compile")
	}
	nativeABI, ok := abiFor(native)
	if !ok {
		return nil, errdefs.NotImplemented("seccomp: the built-in runtime cannot build filters for architecture %q; use --runtime runc", native)
	}
	defaultRet, err := actionRet(cfg.DefaultAction, cfg.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("seccomp defaultAction: %w", err)
	}
	rules := make([]rule, len(cfg.Syscalls))
	for i, sc := range cfg.Syscalls {
		if rules[i], err = parseRule(sc); err != nil {
			return nil, fmt.Errorf("seccomp syscalls[%d] (%v): %w", i, sc.Names, err)
		}
	}
	abis, err := selectABIs(cfg.Architectures, nativeABI)
	if err != nil {
		return nil, err
	}

	c := compiler{
		syscalls:   cfg.Syscalls,
		rules:      rules,
		defaultRet: defaultRet,
		enosys:     !permissive(cfg.DefaultAction),
	}
	names := 0
	for _, sc := range cfg.Syscalls {
		names += len(sc.Names)
	}
	c.hits = make([]named, 0, names)
	// Room for Docker's default profile on three ABIs without regrowing.
	c.asm.insns = make([]instruction, 0, 1024)
	c.asm.labels = make([]int, 0, 512)
	c.asm.loadWord(offsetArch)
	for _, audit := range auditOrder(abis) {
		otherArch := c.asm.newLabel()
		c.asm.jump(unix.BPF_JEQ, audit, next, otherArch)
		c.asm.loadWord(offsetNr)
		c.section(c.partition(audit, abis))
		c.asm.bind(otherArch)
	}
	c.asm.ret(unix.SECCOMP_RET_KILL_PROCESS)

	prog, err := c.asm.assemble()
	if err != nil {
		return nil, err
	}
	if len(prog) > unix.BPF_MAXINSNS {
		return nil, errdefs.InvalidArgument("seccomp profile compiles to %d BPF instructions, more than the kernel's limit of %d; simplify its argument rules", len(prog), unix.BPF_MAXINSNS)
	}
	return prog, nil
}

// permissive reports whether the default action lets unknown syscalls
// through, in which case the ENOSYS bound is not needed. runc counts TRACE
// among them: a tracer is expected to handle syscalls it does not know.
func permissive(act specs.LinuxSeccompAction) bool {
	return act == specs.ActAllow || act == specs.ActLog || act == specs.ActTrace
}

// actionRet is the filter's return value for act. errnoRet is the errno of
// ERRNO and the message of TRACE; EPERM when nil.
func actionRet(act specs.LinuxSeccompAction, errnoRet *uint) (uint32, error) {
	data := uint(unix.EPERM)
	if errnoRet != nil {
		data = *errnoRet
	}
	if (act == specs.ActErrno || act == specs.ActTrace) && data > unix.SECCOMP_RET_DATA {
		return 0, errdefs.InvalidArgument("errnoRet %d does not fit the 16 bits of a seccomp return value", data)
	}
	switch act {
	case specs.ActAllow:
		return unix.SECCOMP_RET_ALLOW, nil
	case specs.ActErrno:
		return unix.SECCOMP_RET_ERRNO | uint32(data), nil
	case specs.ActKill, specs.ActKillThread:
		return unix.SECCOMP_RET_KILL_THREAD, nil
	case specs.ActKillProcess:
		return unix.SECCOMP_RET_KILL_PROCESS, nil
	case specs.ActTrap:
		return unix.SECCOMP_RET_TRAP, nil
	case specs.ActTrace:
		return unix.SECCOMP_RET_TRACE | uint32(data), nil
	case specs.ActLog:
		return unix.SECCOMP_RET_LOG, nil
	case specs.ActNotify:
		return 0, errdefs.NotImplemented("the built-in runtime does not support seccomp notify (%s); use --runtime runc", act)
	case "":
		return 0, errdefs.InvalidArgument("no action given")
	}
	return 0, errdefs.InvalidArgument("unknown action %q", act)
}

func parseRule(sc specs.LinuxSyscall) (rule, error) {
	ret, err := actionRet(sc.Action, sc.ErrnoRet)
	if err != nil {
		return rule{}, err
	}
	for _, arg := range sc.Args {
		if arg.Index >= maxArgs {
			return rule{}, errdefs.InvalidArgument("argument index %d: syscalls have arguments 0 to %d", arg.Index, maxArgs-1)
		}
		switch arg.Op {
		case specs.OpEqualTo, specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual,
			specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual:
		default:
			return rule{}, errdefs.InvalidArgument("unknown argument operator %q", arg.Op)
		}
	}
	return rule{ret: ret, args: sc.Args}, nil
}

// selectABIs returns the ABIs the filter allows: native first, then those
// of archs that kernels of the native family run, without repeats.
func selectABIs(archs []specs.Arch, native abi) ([]abi, error) {
	abis := []abi{native}
	for _, arch := range archs {
		ab, ok := abiFor(arch)
		if !ok {
			if !isSpecArch(arch) {
				return nil, errdefs.InvalidArgument("seccomp: unknown architecture %q", arch)
			}
			// No kernel of the families supported here reports it, so
			// leaving it out changes nothing.
			continue
		}
		if ab.family != native.family || slices.ContainsFunc(abis, func(have abi) bool { return have.arch == ab.arch }) {
			continue
		}
		abis = append(abis, ab)
	}
	return abis, nil
}

func isSpecArch(arch specs.Arch) bool {
	switch arch {
	case specs.ArchX86, specs.ArchX86_64, specs.ArchX32, specs.ArchARM, specs.ArchAARCH64,
		specs.ArchMIPS, specs.ArchMIPS64, specs.ArchMIPS64N32, specs.ArchMIPSEL,
		specs.ArchMIPSEL64, specs.ArchMIPSEL64N32, specs.ArchPPC, specs.ArchPPC64,
		specs.ArchPPC64LE, specs.ArchS390, specs.ArchS390X, specs.ArchPARISC,
		specs.ArchPARISC64, specs.ArchRISCV64, specs.ArchLOONGARCH64, specs.ArchM68K,
		specs.ArchSH, specs.ArchSHEB:
		return true
	}
	return false
}

// auditOrder lists the audit architectures of abis, the native one first:
// the filter checks them in this order.
func auditOrder(abis []abi) []uint32 {
	var order []uint32
	for _, ab := range abis {
		if !slices.Contains(order, ab.audit) {
			order = append(order, ab.audit)
		}
	}
	return order
}

// compiler holds the state of one Compile call.
type compiler struct {
	asm        assembler
	syscalls   []specs.LinuxSyscall
	rules      []rule
	defaultRet uint32
	enosys     bool // numbers above the largest named one get ENOSYS
	hits       []named
	entries    []*rule     // the rules hits refer to, for the ABI at hand
	rets       []sharedRet // of the section being emitted
	blocks     []block     // of the section being emitted
}

// named is a syscall number the profile names (high 32 bits) and the
// index in compiler.entries of the rule naming it (low 32 bits). Entries
// are made in profile order, so once sorted a number's rules are too.
type named uint64

func (n named) nr() uint32    { return uint32(n >> 32) }
func (n named) entry() uint32 { return uint32(n) }

// resolve finds the syscall numbers the profile names on ab: hits sorted
// by number and profile order, and the largest regular number named.
func (c *compiler) resolve(ab abi) (hits []named, largest uint32, found bool) {
	hits, c.entries = c.hits[:0], c.entries[:0]
	add := func(nr uint32, r *rule) {
		hits = append(hits, named(nr)<<32|named(len(c.entries)))
		c.entries = append(c.entries, r)
	}
	for ri, sc := range c.syscalls {
		r := &c.rules[ri]
		for _, name := range sc.Names {
			if nr, ok := ab.lookup(name); ok {
				add(nr, r)
				if ab.privateFirst == 0 || nr < ab.privateFirst {
					largest, found = max(largest, nr), true
				}
			}
			if !ab.multiplexed {
				continue
			}
			if mux, call, ok := multiplexedCall(name); ok {
				if muxNr, ok := ab.lookup(mux); ok {
					add(muxNr, multiplexedRule(r, call))
				}
			}
		}
	}
	slices.Sort(hits)
	c.hits = hits
	return hits, largest, found
}

// multiplexedRule is r applied to socketcall(2) or ipc(2) for call, as
// libseccomp rewrites it: the call number takes the place of the first
// argument's condition; the other conditions stay, though they now test
// the multiplexer's arguments.
func multiplexedRule(r *rule, call uint64) *rule {
	mux := &rule{ret: r.ret, args: []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpEqualTo, Value: call}}}
	for _, arg := range r.args {
		if arg.Index != 0 {
			mux.args = append(mux.args, arg)
		}
	}
	return mux
}

// multiplexedCall returns the multiplexer through which i386 programs may
// also make the socket or SysV IPC syscall name, and its call number
// (SYS_SOCKET... of linux/net.h, SEMOP... of linux/ipc.h).
func multiplexedCall(name string) (mux string, call uint64, ok bool) {
	switch name {
	case "socket":
		return "socketcall", 1, true
	case "bind":
		return "socketcall", 2, true
	case "connect":
		return "socketcall", 3, true
	case "listen":
		return "socketcall", 4, true
	case "accept":
		return "socketcall", 5, true
	case "getsockname":
		return "socketcall", 6, true
	case "getpeername":
		return "socketcall", 7, true
	case "socketpair":
		return "socketcall", 8, true
	case "send":
		return "socketcall", 9, true
	case "recv":
		return "socketcall", 10, true
	case "sendto":
		return "socketcall", 11, true
	case "recvfrom":
		return "socketcall", 12, true
	case "shutdown":
		return "socketcall", 13, true
	case "setsockopt":
		return "socketcall", 14, true
	case "getsockopt":
		return "socketcall", 15, true
	case "sendmsg":
		return "socketcall", 16, true
	case "recvmsg":
		return "socketcall", 17, true
	case "accept4":
		return "socketcall", 18, true
	case "recvmmsg":
		return "socketcall", 19, true
	case "sendmmsg":
		return "socketcall", 20, true
	case "semop":
		return "ipc", 1, true
	case "semget":
		return "ipc", 2, true
	case "semctl":
		return "ipc", 3, true
	case "semtimedop":
		return "ipc", 4, true
	case "msgsnd":
		return "ipc", 11, true
	case "msgrcv":
		return "ipc", 12, true
	case "msgget":
		return "ipc", 13, true
	case "msgctl":
		return "ipc", 14, true
	case "shmat":
		return "ipc", 21, true
	case "shmdt":
		return "ipc", 22, true
	case "shmget":
		return "ipc", 23, true
	case "shmctl":
		return "ipc", 24, true
	}
	return "", 0, false
}

// partition splits the syscall numbers reported under audit into
// intervals with one outcome each, in order, covering 0 to 2^32-1.
func (c *compiler) partition(audit uint32, allowed []abi) []interval {
	var ivs []interval
	add := func(iv interval) {
		if n := len(ivs); n > 0 && len(iv.rules) == 0 && len(ivs[n-1].rules) == 0 && ivs[n-1].ret == iv.ret {
			ivs[n-1].last = iv.last
			return
		}
		ivs = append(ivs, iv)
	}
	for _, arch := range abisOfAudit(audit) {
		i := slices.IndexFunc(allowed, func(ab abi) bool { return ab.arch == arch })
		if i < 0 {
			ab, _ := abiFor(arch)
			add(interval{first: ab.first, last: ab.last, outcome: outcome{ret: unix.SECCOMP_RET_KILL_PROCESS}})
			continue
		}
		ab := allowed[i]

		hits, largest, found := c.resolve(ab)
		// Numbers above the largest regular one named get ENOSYS.
		enosys := c.enosys && found
		// gap covers first to last, unnamed numbers; last+1 is the next
		// named one or the end of the ABI's range.
		gap := func(first, last uint64) {
			if first > last {
				return
			}
			ret := c.defaultRet
			if enosys && first > uint64(largest) {
				ret = retENOSYS
			}
			add(interval{first: uint32(first), last: uint32(last), outcome: outcome{ret: ret}})
		}

		cur := uint64(ab.first)
		for len(hits) > 0 {
			nr := hits[0].nr()
			end := 1
			for end < len(hits) && hits[end].nr() == nr {
				end++
			}
			if uint64(nr) > cur {
				gap(cur, uint64(nr)-1)
			}
			add(interval{first: nr, last: nr, outcome: c.outcomeOf(hits[:end], ab.args32)})
			cur = uint64(nr) + 1
			hits = hits[end:]
		}
		gap(cur, uint64(ab.last))
	}
	return ivs
}

// outcomeOf combines the rules naming one syscall number, in profile
// order: the first rule without argument conditions ends the list, as no
// rule after it can be reached.
func (c *compiler) outcomeOf(hits []named, args32 bool) outcome {
	o := outcome{ret: c.defaultRet, args32: args32}
	for _, h := range hits {
		r := c.entries[h.entry()]
		if len(r.args) == 0 {
			o.ret = r.ret
			break
		}
		o.rules = append(o.rules, r)
	}
	// Conditional rules at the end whose action is the fallback's change
	// nothing.
	for len(o.rules) > 0 && o.rules[len(o.rules)-1].ret == o.ret {
		o.rules = o.rules[:len(o.rules)-1]
	}
	return o
}

// section emits the code for one audit architecture, with the syscall
// number in A: a binary search over ivs made of JGE instructions only,
// whose leaves jump to one return instruction per result (there are few)
// or to the code of a syscall with argument rules. The returns come right
// after the search, so that its jumps stay short.
func (c *compiler) section(ivs []interval) {
	if len(ivs) == 1 {
		c.emitOutcome(ivs[0].outcome)
		return
	}
	c.rets, c.blocks = c.rets[:0], c.blocks[:0]
	c.search(ivs)
	for _, r := range c.rets {
		c.asm.bind(r.at)
		c.asm.ret(r.ret)
	}
	for _, b := range c.blocks {
		c.asm.bind(b.at)
		c.emitOutcome(b.outcome)
	}
}

// search emits the search over ivs, two or more intervals.
func (c *compiler) search(ivs []interval) {
	mid := len(ivs) / 2
	lower, upper := ivs[:mid], ivs[mid:]
	jt, jf := c.asm.newLabel(), next
	if len(upper) == 1 {
		jt = c.leaf(upper[0].outcome)
	}
	if len(lower) == 1 {
		jf = c.leaf(lower[0].outcome)
	}
	c.asm.jump(unix.BPF_JGE, upper[0].first, jt, jf)
	if len(lower) > 1 {
		c.search(lower)
	}
	if len(upper) > 1 {
		c.asm.bind(jt)
		c.search(upper)
	}
}

// leaf returns the label of the code for o, to be emitted after the
// search.
func (c *compiler) leaf(o outcome) label {
	if len(o.rules) > 0 {
		b := block{at: c.asm.newLabel(), outcome: o}
		c.blocks = append(c.blocks, b)
		return b.at
	}
	for _, r := range c.rets {
		if r.ret == o.ret {
			return r.at
		}
	}
	r := sharedRet{at: c.asm.newLabel(), ret: o.ret}
	c.rets = append(c.rets, r)
	return r.at
}

// sharedRet is the return instruction of a section for one result.
type sharedRet struct {
	at  label
	ret uint32
}

// block is the code of a syscall with argument rules.
type block struct {
	at label
	outcome
}

func (c *compiler) emitOutcome(o outcome) {
	for _, r := range o.rules {
		mismatch := c.asm.newLabel()
		for _, arg := range r.args {
			c.emitArg(arg, o.args32, mismatch)
		}
		c.asm.ret(r.ret)
		c.asm.bind(mismatch)
	}
	c.asm.ret(o.ret)
}

// emitArg emits a test of one argument condition that falls through when
// it holds and jumps to mismatch when not. 64-bit values are compared high
// word first: only when the high words are equal do the low words decide.
func (c *compiler) emitArg(arg specs.LinuxSeccompArg, args32 bool, mismatch label) {
	a := &c.asm
	match := a.newLabel()
	lowOffset := offsetArgs + 8*uint32(arg.Index)
	value := arg.Value
	if arg.Op == specs.OpMaskedEqual {
		value = arg.ValueTwo // arg.Value is the mask
	}
	hi, lo := uint32(value>>32), uint32(value)
	maskHi, maskLo := uint32(arg.Value>>32), uint32(arg.Value)

	if !args32 {
		switch arg.Op {
		case specs.OpEqualTo:
			a.loadWord(lowOffset + 4)
			a.jump(unix.BPF_JEQ, hi, next, mismatch)
		case specs.OpNotEqual:
			a.loadWord(lowOffset + 4)
			a.jump(unix.BPF_JEQ, hi, next, match)
		case specs.OpGreaterThan, specs.OpGreaterEqual:
			a.loadWord(lowOffset + 4)
			a.jump(unix.BPF_JGT, hi, match, next)
			if hi != 0 { // a high word below 0 is impossible
				a.jump(unix.BPF_JEQ, hi, next, mismatch)
			}
		case specs.OpLessThan, specs.OpLessEqual:
			a.loadWord(lowOffset + 4)
			a.jump(unix.BPF_JGT, hi, mismatch, next)
			if hi != 0 {
				a.jump(unix.BPF_JEQ, hi, next, match)
			}
		case specs.OpMaskedEqual:
			switch {
			case maskHi == 0 && hi == 0:
				// The high word cannot matter.
			case maskHi&hi != hi:
				// Bits expected that the mask clears: never equal.
				a.jumpAlways(mismatch)
				return
			default:
				a.loadWord(lowOffset + 4)
				if maskHi != 0xffffffff {
					a.and(maskHi)
				}
				a.jump(unix.BPF_JEQ, hi, next, mismatch)
			}
		}
	}

	a.loadWord(lowOffset)
	switch arg.Op {
	case specs.OpEqualTo:
		a.jump(unix.BPF_JEQ, lo, match, mismatch)
	case specs.OpNotEqual:
		a.jump(unix.BPF_JEQ, lo, mismatch, match)
	case specs.OpGreaterThan:
		a.jump(unix.BPF_JGT, lo, match, mismatch)
	case specs.OpGreaterEqual:
		a.jump(unix.BPF_JGE, lo, match, mismatch)
	case specs.OpLessThan:
		a.jump(unix.BPF_JGE, lo, mismatch, match)
	case specs.OpLessEqual:
		a.jump(unix.BPF_JGT, lo, mismatch, match)
	case specs.OpMaskedEqual:
		if maskLo != 0xffffffff {
			a.and(maskLo)
		}
		a.jump(unix.BPF_JEQ, lo, match, mismatch)
	}
	a.bind(match)
}

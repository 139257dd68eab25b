package seccompbpf

import (
	goruntime "runtime"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// x32SyscallBit is set in every syscall number of the x32 ABI, which the
// kernel reports under AUDIT_ARCH_X86_64 like x86_64 itself.
const x32SyscallBit = 0x40000000

// armPrivateBase is __ARM_NR_BASE: ARM's private syscalls (set_tls,
// cacheflush, ...) are numbered from here, far above the regular ones.
const armPrivateBase = 0x0f0000

// abi is one syscall ABI a filter can allow.
type abi struct {
	arch specs.Arch
	// audit is the AUDIT_ARCH_* value the kernel puts in seccomp_data.arch.
	audit uint32
	// first and last bound the syscall numbers of this ABI among those of
	// its audit architecture: x86_64 and x32 share AUDIT_ARCH_X86_64 and
	// split the numbers at x32SyscallBit.
	first, last uint32
	// args32 is set for ABIs with 32-bit registers, whose arguments are
	// compared on their low 32 bits only (as libseccomp does).
	args32 bool
	// privateFirst, when not 0, is where the architecture's private
	// syscalls begin; they do not count for the ENOSYS bound.
	privateFirst uint32
	// multiplexed is set for i386, whose socket and SysV IPC syscalls can
	// also be made through socketcall(2) and ipc(2). As libseccomp does,
	// a rule for one of them applies to the multiplexer too.
	multiplexed bool
	// family is the native architecture whose kernels run this ABI.
	family specs.Arch
	lookup func(name string) (uint32, bool)
}

// abiFor describes arch, or reports false for an architecture this package
// has no syscall table for.
func abiFor(arch specs.Arch) (abi, bool) {
	switch arch {
	case specs.ArchX86_64:
		return abi{arch: arch, audit: unix.AUDIT_ARCH_X86_64, first: 0, last: x32SyscallBit - 1,
			family: specs.ArchX86_64, lookup: syscallX86_64}, true
	case specs.ArchX32:
		return abi{arch: arch, audit: unix.AUDIT_ARCH_X86_64, first: x32SyscallBit, last: 0xffffffff,
			args32: true, family: specs.ArchX86_64, lookup: syscallX32}, true
	case specs.ArchX86:
		return abi{arch: arch, audit: unix.AUDIT_ARCH_I386, first: 0, last: 0xffffffff,
			args32: true, multiplexed: true, family: specs.ArchX86_64, lookup: syscallX86}, true
	case specs.ArchAARCH64:
		return abi{arch: arch, audit: unix.AUDIT_ARCH_AARCH64, first: 0, last: 0xffffffff,
			family: specs.ArchAARCH64, lookup: syscallAARCH64}, true
	case specs.ArchARM:
		return abi{arch: arch, audit: unix.AUDIT_ARCH_ARM, first: 0, last: 0xffffffff,
			args32: true, privateFirst: armPrivateBase, family: specs.ArchAARCH64, lookup: syscallARM}, true
	}
	return abi{}, false
}

// abisOfAudit lists the ABIs that share an audit architecture, in the
// order of their syscall numbers.
func abisOfAudit(audit uint32) []specs.Arch {
	switch audit {
	case unix.AUDIT_ARCH_X86_64:
		return []specs.Arch{specs.ArchX86_64, specs.ArchX32}
	case unix.AUDIT_ARCH_I386:
		return []specs.Arch{specs.ArchX86}
	case unix.AUDIT_ARCH_AARCH64:
		return []specs.Arch{specs.ArchAARCH64}
	case unix.AUDIT_ARCH_ARM:
		return []specs.Arch{specs.ArchARM}
	}
	return nil
}

// NativeArch returns the runtime-spec name of the architecture this binary
// was built for, or "" when this package cannot build filters for it.
func NativeArch() specs.Arch {
	switch goruntime.GOARCH {
	case "amd64":
		return specs.ArchX86_64
	case "arm64":
		return specs.ArchAARCH64
	case "386":
		return specs.ArchX86
	case "arm":
		return specs.ArchARM
	}
	return ""
}

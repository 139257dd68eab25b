package seccompbpf

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// TestPartitionCoversAllNumbers checks the invariant the search relies on:
// the intervals of an audit architecture follow each other without gaps or
// overlaps from 0 to 2^32-1, and neighbours with the same plain result are
// merged.
func TestPartitionCoversAllNumbers(t *testing.T) {
	tests := []struct {
		name    string
		native  specs.Arch
		archs   []specs.Arch
		names   []string
		enosys  bool
		audited []uint32
	}{
		{"first and last numbers named", specs.ArchX86_64, []specs.Arch{specs.ArchX32, specs.ArchX86},
			[]string{"read", "write", "rseq_slice_yield", "restart_syscall"}, true,
			[]uint32{unix.AUDIT_ARCH_X86_64, unix.AUDIT_ARCH_I386}},
		{"x32 not allowed", specs.ArchX86_64, nil, []string{"read", "clone"}, false,
			[]uint32{unix.AUDIT_ARCH_X86_64}},
		{"nothing named", specs.ArchAARCH64, []specs.Arch{specs.ArchARM}, nil, true,
			[]uint32{unix.AUDIT_ARCH_AARCH64, unix.AUDIT_ARCH_ARM}},
		{"ARM private syscalls", specs.ArchARM, nil, []string{"restart_syscall", "set_tls", "breakpoint", "get_tls"}, true,
			[]uint32{unix.AUDIT_ARCH_ARM}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &specs.LinuxSeccomp{Syscalls: []specs.LinuxSyscall{
				{Names: tt.names, Action: specs.ActAllow},
				{Names: tt.names, Action: specs.ActLog, Args: []specs.LinuxSeccompArg{{Op: specs.OpEqualTo}}},
			}}
			rules := make([]rule, len(cfg.Syscalls))
			for i, sc := range cfg.Syscalls {
				rules[i], _ = parseRule(sc)
			}
			native, _ := abiFor(tt.native)
			abis, err := selectABIs(tt.archs, native)
			if err != nil {
				t.Fatal(err)
			}
			c := compiler{syscalls: cfg.Syscalls, rules: rules, defaultRet: unix.SECCOMP_RET_ERRNO | 1, enosys: tt.enosys}
			for _, audit := range tt.audited {
				ivs := c.partition(audit, abis)
				if ivs[0].first != 0 || ivs[len(ivs)-1].last != 0xffffffff {
					t.Errorf("audit %#x: intervals span %#x to %#x", audit, ivs[0].first, ivs[len(ivs)-1].last)
				}
				for i, iv := range ivs {
					if iv.first > iv.last {
						t.Errorf("audit %#x: interval %d is %#x to %#x", audit, i, iv.first, iv.last)
					}
					if i == 0 {
						continue
					}
					prev := ivs[i-1]
					if uint64(prev.last)+1 != uint64(iv.first) {
						t.Errorf("audit %#x: interval %d ends at %#x, the next starts at %#x", audit, i-1, prev.last, iv.first)
					}
					if len(prev.rules) == 0 && len(iv.rules) == 0 && prev.ret == iv.ret {
						t.Errorf("audit %#x: intervals %d and %d have the same result %#x", audit, i-1, i, iv.ret)
					}
				}
			}
		})
	}
}

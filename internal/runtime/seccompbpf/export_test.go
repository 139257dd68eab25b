package seccompbpf

import specs "github.com/opencontainers/runtime-spec/specs-go"

// SyscallNumber resolves name on arch as Compile does, for the tests'
// model of a filter.
func SyscallNumber(arch specs.Arch, name string) (uint32, bool) {
	ab, ok := abiFor(arch)
	if !ok {
		return 0, false
	}
	return ab.lookup(name)
}

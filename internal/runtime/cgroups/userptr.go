//go:build !(386 || arm || mips || mipsle)

package cgroups

import "unsafe"

// userPtr is an __aligned_u64 of a bpf_attr holding a user-space address.
// It is a pointer rather than an integer so that the garbage collector
// keeps what it points at alive, and in place, while the kernel reads it.
// On 64-bit machines a pointer fills it exactly; 32-bit ones pad it
// (userptr_32*.go).
type userPtr struct{ p unsafe.Pointer }

//go:build mips

package cgroups

import "unsafe"

// userPtr is an __aligned_u64 holding a user-space address (see
// userptr.go); a big-endian machine keeps the address in its high-address
// half.
type userPtr struct {
	_ uint32
	p unsafe.Pointer
}

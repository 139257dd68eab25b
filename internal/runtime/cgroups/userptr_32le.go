//go:build 386 || arm || mipsle

package cgroups

import "unsafe"

// userPtr is an __aligned_u64 holding a user-space address (see
// userptr.go); a little-endian machine keeps the address in its low half.
type userPtr struct {
	p unsafe.Pointer
	_ uint32
}

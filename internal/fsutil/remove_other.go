//go:build !linux

package fsutil

import (
	"errors"
	"os"
)

// RemoveAll is os.RemoveAll where berth runs no containers.
func RemoveAll(path string) error { return os.RemoveAll(path) }

// ErrMountPoint is the error for a mount point met inside a tree.
var ErrMountPoint = errors.New("is a mount point; not removed (unmount it first)")

//go:build !linux

package layer

import (
	"context"
	"io"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Apply is only implemented on Linux: layers are overlayfs lower layers.
func Apply(ctx context.Context, root string, r io.Reader) (int64, error) {
	return 0, errdefs.NotImplemented("layer: Apply is only supported on Linux")
}

// Diff is only implemented on Linux.
func Diff(ctx context.Context, w io.Writer, upper string, lowers []string) error {
	return errdefs.NotImplemented("layer: Diff is only supported on Linux")
}

// WriteTar is only implemented on Linux.
func WriteTar(ctx context.Context, w io.Writer, root string) error {
	return errdefs.NotImplemented("layer: WriteTar is only supported on Linux")
}

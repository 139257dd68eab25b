//go:build !linux

package layer

import (
	"context"

	"github.com/berth-dev/berth/internal/errdefs"
)

// Size is only implemented on Linux.
func Size(ctx context.Context, dir string) (int64, error) {
	return 0, errdefs.NotImplemented("layer: Size is only supported on Linux")
}

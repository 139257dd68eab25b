package container

import (
	"context"
	"errors"

	"github.com/berth-dev/berth/internal/errdefs"
)

// recordStartFailure notes on a container that stays created why its
// start failed, as docker does: State.Error and exit code 128 (or the
// status the failure carries). A --rm container is gone already.
func (s *Service) recordStartFailure(ctx context.Context, c *Container, cause error) {
	if c.HostConfig.AutoRemove {
		return
	}
	code := 128
	var st *errdefs.ExitStatus
	if errors.As(cause, &st) && st.Code != 0 {
		code = st.Code
	}
	s.update(context.WithoutCancel(ctx), c.ID, func(c *Container) error {
		if c.State.Running || c.State.Restarting {
			return nil // another start won meanwhile
		}
		c.State.Error, c.State.ExitCode = cause.Error(), code
		return nil
	})
}

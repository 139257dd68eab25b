package container

import (
	"context"
	"errors"
)

// deferredDetacher is a NetworkAttacher that can split a final detach:
// what others need at once, then a finish whose cost (the dataplane's
// deletions wait for RCU grace periods) nobody needs to wait for.
type deferredDetacher interface {
	DetachDeferred(ctx context.Context, ep *Endpoint) (finish func(context.Context) error, err error)
}

// detachNetworkDeferred is detachNetworkHolding(ctx, c, true, held) for a
// container being removed, with the slow part returned as finish (nil
// when none), for the monitor to run after it has reported the exit.
func (s *Service) detachNetworkDeferred(ctx context.Context, c *Container, held *[]Event) (finish func(context.Context) error, err error) {
	dd, ok := s.network.(deferredDetacher)
	if !ok {
		return nil, s.detachNetworkHolding(ctx, c, true, held)
	}
	ep := s.endpoint(c)
	ep.Final, ep.HeldEvents = true, held
	finish, err = dd.DetachDeferred(ctx, ep)
	return finish, errors.Join(err, releaseNetNS(s.netnsPath(c.ID)))
}

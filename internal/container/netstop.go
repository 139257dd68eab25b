package container

import (
	"context"
	"errors"
)

// stoppedDetacher is a NetworkAttacher whose final detach of a container
// that stops (not removed) returns a finish for what nobody needs to wait
// for: deleting the anti-spoofing guards the release leaves in place.
type stoppedDetacher interface {
	DetachStopped(ctx context.Context, ep *Endpoint) (finish func(context.Context) error, err error)
}

// detachNetworkStopped is detachNetworkHolding(ctx, c, true, held) for a
// container that stopped for good, with the guards' deletion returned as
// finish (nil when none), for the monitor to run after it has reported
// the exit: `stop` waits for that report, not for the deletion (an RCU
// grace period); a `start` right after waits for this monitor to end
// (waitMonitorGone), and finish deletes nothing of a new run's even if
// it did not.
func (s *Service) detachNetworkStopped(ctx context.Context, c *Container, held *[]Event) (finish func(context.Context) error, err error) {
	sd, ok := s.network.(stoppedDetacher)
	if !ok {
		return nil, s.detachNetworkHolding(ctx, c, true, held)
	}
	ep := s.endpoint(c)
	ep.Final, ep.HeldEvents = true, held
	finish, err = sd.DetachStopped(ctx, ep)
	return finish, errors.Join(err, releaseNetNS(s.netnsPath(c.ID)))
}

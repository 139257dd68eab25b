package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"

	"github.com/berth-dev/berth/internal/container"
)

// stoppedGuardWait bounds a stopped container's late release of its
// guards, most of which is the wait for its veth to go with the
// namespace (0.1-3 ms measured here, also on a loaded host), as the
// next start of the container waits for the monitor that runs it to
// end: a namespace that another container keeps alive (--network
// container:) keeps the veth, and its guards stay anyway. A release cut
// short leaves them to the next run (replaceStale) or a prune.
const stoppedGuardWait = 250 * time.Millisecond

// newRun names one attach of an endpoint (Allocation.Run): 64 random
// bits, so that no two runs of a container share their guards' digest.
func newRun() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// DetachStopped is Detach for a container that stopped for good (its
// monitor's final detach; not a removal, which DetachDeferred serves).
// The detach happens now, as Detach's; the returned finish, which the
// monitor runs after it has reported the exit (deleting waits for an RCU
// grace period), deletes the guards that the release of an endpoint
// without published ports leaves in place: otherwise they would stay
// until the container runs again, and after its `rm` until the next
// prune. The container may meanwhile be started again, with the same
// port names, MAC and addresses: each run's guards have a digest of
// their own (Allocation.Run), so this run's release deletes this run's
// guards or nothing (dataplane.ReleaseGuards); a start waits for the
// monitor to end as well (waitMonitorGone), but the guards' safety does
// not count on it. finish is nil when there is nothing to delete.
func (a *Attacher) DetachStopped(ctx context.Context, ep *container.Endpoint) (finish func(context.Context) error, err error) {
	if !attachable(ep) || !ep.Final {
		return nil, a.Detach(ctx, ep)
	}
	// Read before Detach frees the addresses, whose records name the
	// run's endpoints.
	atts, err := a.svc.attachmentsOf(ctx, ep.ID)
	if derr := a.Detach(ctx, ep); err != nil || derr != nil {
		return nil, errors.Join(err, derr) // the guards stay for the sweep
	}
	var runs []*attachment
	for _, at := range atts {
		// Without a run (an older berth's record), the next run's
		// guards could have this one's digest: leave them to
		// Reconcile.
		if len(at.allocs) > 0 && at.allocs[0].Run != "" {
			runs = append(runs, at)
		}
	}
	if len(runs) == 0 {
		return nil, nil
	}
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, stoppedGuardWait)
		defer cancel()
		a.releaseGuards(ctx, ep.ID, runs)
		return nil
	}, nil
}

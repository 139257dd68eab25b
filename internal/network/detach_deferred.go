package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/metadata"
)

// DetachDeferred is Detach for a container that is being removed
// (ep.Final, its ID never runs again), split so that its monitor can
// report the exit before the slow part. Now: the DNS server, the host
// ports' reservations and the names go, and the addresses are marked
// as being released by this process (they stay taken, so no other
// container gets one of them while DNAT elements still point there, but
// keep no network in use: `network rm` right after `run --rm` works).
// The returned finish unpublishes the ports in the dataplane, whose
// deletion waits for RCU grace periods (~10-15 ms), then frees the
// addresses, then deletes the guards a release without ports leaves
// (releaseGuards). Meanwhile a container that reserves one of those host ports
// replaces the leftover DNAT element (PortsReserved), whose value names
// another address, so a following `run -p` of the same port works and
// finish leaves that container's element alone. finish is nil when
// nothing is left to do; if this process dies before finishing, the
// addresses are an ordinary stale attachment for the sweep.
func (a *Attacher) DetachDeferred(ctx context.Context, ep *container.Endpoint) (finish func(context.Context) error, err error) {
	if !attachable(ep) || !ep.Final {
		return nil, a.Detach(ctx, ep)
	}
	a.mu.Lock()
	h := a.held[ep.ID]
	delete(a.held, ep.ID)
	a.mu.Unlock()
	atts, err := a.svc.attachmentsOf(ctx, ep.ID)
	if err != nil {
		return nil, err
	}
	if len(atts) == 0 && h == nil {
		return nil, nil
	}
	var errs []error
	if h != nil {
		errs = append(errs, h.close())
	}
	for _, at := range atts {
		if a.names != nil && at.net.IsUserDefined() && len(at.allocs) > 0 {
			errs = append(errs, a.names.Remove(ctx, at.net.ID, ep.ID))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, errors.Join(err, a.release(ctx, ep, atts, nil))
	}
	if err := a.svc.markReleasing(ctx, ep.ID); err != nil {
		return nil, errors.Join(err, a.release(ctx, ep, atts, nil))
	}
	for _, at := range atts {
		a.emitFor(ctx, ep, "disconnect", at.net)
	}
	return func(ctx context.Context) error {
		var errs []error
		var nets []string
		for _, at := range atts {
			nets = append(nets, at.net.ID)
			if len(at.allocs) == 0 {
				continue
			}
			dep := endpointOf(at.net, ep.ID, at.allocs)
			remove := a.dp.RemoveEndpoint
			if dep.NetNSPath != "" {
				remove = a.dp.ReleaseEndpoint
			}
			if err := remove(ctx, dpNetwork(at.net), dep); err != nil {
				errs = append(errs, fmt.Errorf("disconnect from network %s: %w", at.net.Name, err))
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err // the addresses stay for the sweep
		}
		err := a.svc.releaseContainer(ctx, ep.ID, nets)
		a.releaseGuards(ctx, ep.ID, atts)
		return err
	}, nil
}

// markReleasing marks every address of container id as being released by
// this process.
func (s *Service) markReleasing(ctx context.Context, id string) error {
	pid, start := selfOwner()
	return s.meta.Update(ctx, func(tx *metadata.Tx) error {
		type kv struct {
			k  string
			al Allocation
		}
		var mine []kv
		err := tx.ForEach(metadata.BucketIPAM, func(k string, raw []byte) error {
			var al Allocation
			if json.Unmarshal(raw, &al) == nil && al.ContainerID == id {
				mine = append(mine, kv{k, al})
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, m := range mine {
			m.al.ReleasingPid, m.al.ReleasingStart = pid, start
			if err := tx.Put(metadata.BucketIPAM, m.k, m.al); err != nil {
				return err
			}
		}
		return nil
	})
}

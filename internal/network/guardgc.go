package network

import (
	"context"

	"github.com/berth-dev/berth/internal/network/dataplane"
)

// guardReleaser is a Dataplane that can delete the anti-spoofing guards a
// release without published ports leaves in place
// (dataplane.ReleaseGuards).
type guardReleaser interface {
	ReleaseGuards(ctx context.Context, n dataplane.Network, ep dataplane.Endpoint) error
}

// releaseGuards deletes the guards of container id's released endpoints
// (left, they would pile up until the next prune). It is the last step
// of DetachDeferred's finish, after the removal was reported, and
// DetachStopped's, after a stop was. Best effort: a failure, or a monitor
// killed before it, leaves them to Reconcile (prune, system restore) and
// RemoveNetwork, and never fails the removal or the stop.
func (a *Attacher) releaseGuards(ctx context.Context, id string, atts []*attachment) {
	gr, ok := a.dp.(guardReleaser)
	if !ok {
		return
	}
	for _, at := range atts {
		if len(at.allocs) == 0 {
			continue
		}
		dep := endpointOf(at.net, id, at.allocs)
		if dep.NetNSPath == "" {
			continue // RemoveEndpoint deleted the guards with the link
		}
		_ = gr.ReleaseGuards(ctx, dpNetwork(at.net), dep)
	}
}

package dataplane

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/vishvananda/netlink"
)

// guardLinkWait bounds ReleaseGuards' wait for the kernel to delete the
// port's veth with its namespace (in the background, usually within
// tens of milliseconds).
const guardLinkWait = 5 * time.Second

// ReleaseGuards deletes the guards that ReleaseEndpoint left in place for
// an endpoint without published ports (portDigest), once its container
// has been removed or its run has stopped: nothing else would delete
// them (a removed container's port name, derived from its ID, never
// comes back; a stopped one may be removed before it runs again), and
// they would pile up until the next Reconcile. It is meant to run after
// the exit was reported, as the deletion waits for an RCU grace period.
//
// Only this endpoint's elements go, and only once its veth is gone:
//   - the port still has a link (its namespace lives on, kept by another
//     container sharing it, or the kernel has not deleted it within
//     guardLinkWait): the guards stay, for Reconcile;
//   - the port's elements are another endpoint's (a port name used again,
//     by an AddEndpoint before or during this call; or the same
//     container's next run, started at once): the transaction adds this
//     endpoint's digest element before deleting it, and that add clashes
//     (EEXIST) with another endpoint's digest, which differs as it covers
//     the endpoint's tag and run (Endpoint.Run); nothing is deleted.
//     Every element is added before it is deleted, so the transaction
//     deletes exactly this endpoint's elements or nothing, whatever is
//     left of them.
//
// An endpoint with published ports has no guards left: ReleaseEndpoint
// deleted them with its DNAT elements.
func (d *Dataplane) ReleaseGuards(ctx context.Context, n Network, ep Endpoint) error {
	if err := validateEndpoint(n, ep); err != nil {
		return err
	}
	if els, err := endpointElements(n, ep); err != nil || len(els) > 0 {
		return err
	}
	guards, err := guardElements(n, ep)
	if err != nil {
		return errdefs.InvalidArgument("container %s: %v", ep.ContainerID, err)
	}
	if err := waitLinkGone(ctx, ep.HostIfName, guardLinkWait); err != nil {
		return err
	}
	unlock, err := d.lockForRemoval(ctx)
	if err != nil || unlock == nil {
		return err // nil unlock: no table, nothing guarded
	}
	defer unlock()
	// A link made meanwhile is the port's new owner's (an AddEndpoint
	// between its guards and its veth is caught by the digest below;
	// the lock keeps Reconcile out).
	if linkPresent(ep.HostIfName) {
		return errdefs.Conflict("port %s is in use again: its guards stay", ep.HostIfName)
	}
	if err := d.deleteOwnGuards(guards); err != nil {
		return fmt.Errorf("container %s: deleting the guards of port %s: %w", ep.ContainerID, ep.HostIfName, err)
	}
	return nil
}

// deleteOwnGuards deletes an endpoint's guards (guardElements) if they
// are still its own, in one transaction that adds each element before
// deleting it: the add of its digest element clashes (EEXIST) when the
// port's digest is another endpoint's, and nothing is deleted; elements
// already gone are no error.
func (d *Dataplane) deleteOwnGuards(guards []element) error {
	err := d.deleteAddedFirst(guards)
	if isExist(err) || isNotExist(err) {
		return nil // another endpoint's now; or no table or set
	}
	return err
}

// deleteAddedFirst deletes els in one transaction, adding each first
// (a missing one is no error; one with another value fails it, EEXIST).
func (d *Dataplane) deleteAddedFirst(els []element) error {
	b, err := d.newBatch()
	if err != nil {
		return err
	}
	if err := b.delElements(els, true); err != nil {
		return err
	}
	return b.flush()
}

// waitLinkGone polls until no link is named name, for at most max.
func waitLinkGone(ctx context.Context, name string, max time.Duration) error {
	deadline := time.Now().Add(max)
	for delay := time.Millisecond; linkPresent(name); delay = min(2*delay, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			return errdefs.Conflict("port %s still exists after %s: its guards stay", name, max)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
	return nil
}

// linkPresent says whether a link is named name; an error other than
// "not found" counts as present (the guards then stay).
func linkPresent(name string) bool {
	_, err := netlink.LinkByName(name)
	var nf netlink.LinkNotFoundError
	return !errors.As(err, &nf)
}

package network

import (
	"context"
	"encoding/json"
	"errors"
	"os"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/container"
	"github.com/berth-dev/berth/internal/metadata"
	"github.com/berth-dev/berth/internal/network/dataplane"
	"github.com/berth-dev/berth/internal/runtime"
)

// ownerAlive reports whether the process that made an allocation still
// runs (the same process: pid and start time).
func ownerAlive(al Allocation) bool {
	if al.OwnerPid <= 0 {
		return false
	}
	st, err := runtime.ProcessStartTime(al.OwnerPid)
	return err == nil && (al.OwnerStart == 0 || st == al.OwnerStart)
}

// releaserAlive reports whether a process releasing al (DetachDeferred)
// still runs: it finishes the release itself.
func releaserAlive(al Allocation) bool {
	return al.ReleasingPid > 0 && ownerAlive(Allocation{OwnerPid: al.ReleasingPid, OwnerStart: al.ReleasingStart})
}

func selfOwner() (int, uint64) {
	st, _ := runtime.ProcessStartTime(os.Getpid())
	return os.Getpid(), st
}

// Sweep releases the addresses, endpoints and names of containers that
// are no longer attached (removed, or whose monitor died: running says
// which containers run), keeps those whose attaching process still works,
// and has the dataplane reconcile the kernel to the recorded networks and
// endpoints (stale bridges, veths and rules go; missing ones come back).
func (a *Attacher) Sweep(ctx context.Context, running func(containerID string) bool) error {
	var nets []*Network
	stale := map[string]bool{}
	var keep []dataplane.Endpoint
	err := a.svc.meta.View(ctx, func(tx *metadata.Tx) error {
		return tx.ForEach(metadata.BucketIPAM, func(k string, raw []byte) error {
			var al Allocation
			if json.Unmarshal(raw, &al) != nil {
				return nil
			}
			if !running(al.ContainerID) && !ownerAlive(al) {
				stale[al.ContainerID] = true
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	var errs []error
	for id := range stale {
		if err := a.Detach(ctx, &container.Endpoint{ID: id}); err != nil {
			errs = append(errs, err)
		}
	}
	unlock, err := a.lock(ctx, unix.LOCK_EX)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	defer unlock()
	// The recorded state is read under the lock, so that no attach
	// records an endpoint between this list and the reconciliation.
	if err := a.svc.meta.View(ctx, func(tx *metadata.Tx) error {
		var err error
		nets, err = networksTx(tx)
		return err
	}); err != nil {
		return errors.Join(append(errs, err)...)
	}
	byID := map[string]*Network{}
	var dnets []dataplane.Network
	for _, n := range nets {
		byID[n.ID] = n
		if n.Driver == "bridge" {
			dnets = append(dnets, dpNetwork(n))
		}
	}
	type key struct{ nid, cid string }
	allocs := map[key][]Allocation{}
	var order []key
	err = a.svc.meta.View(ctx, func(tx *metadata.Tx) error {
		return tx.ForEach(metadata.BucketIPAM, func(k string, raw []byte) error {
			var al Allocation
			nid, _, ok := splitAllocKey(k)
			if !ok || json.Unmarshal(raw, &al) != nil || byID[nid] == nil || al.ReleasingPid != 0 {
				return nil // a releasing endpoint is not kept
			}
			kk := key{nid, al.ContainerID}
			if _, seen := allocs[kk]; !seen {
				order = append(order, kk)
			}
			allocs[kk] = append(allocs[kk], al)
			return nil
		})
	})
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, kk := range order {
		keep = append(keep, endpointOf(byID[kk.nid], kk.cid, allocs[kk]))
	}
	if idleRoot(nets, keep) {
		// The default bridge is made on first use; with nothing on any
		// network it goes too, and the root leaves nothing in the
		// kernel (the dataplane drops its table with the last bridge).
		dnets = nil
	}
	if err := a.dp.Reconcile(ctx, dnets, keep); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// idleRoot reports whether a root has no endpoint and no user-defined
// bridge network (whose bridge, as Docker's, lives from create to rm).
func idleRoot(nets []*Network, keep []dataplane.Endpoint) bool {
	if len(keep) > 0 {
		return false
	}
	for _, n := range nets {
		if n.Driver == "bridge" && n.IsUserDefined() {
			return false
		}
	}
	return true
}

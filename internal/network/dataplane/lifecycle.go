package dataplane

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/berth-dev/berth/internal/lockfile"
	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A root's kernel state lives as long as it has a bridge: the table goes
// with the last one (RemoveNetwork, or Reconcile told of no network that
// has endpoints or a bridge), unless the users' chain holds rules of
// theirs, which berth never deletes. Without this every root that ever
// ran a container (every test root) left a table in the kernel for good.
// The lock file (one per table in a host-wide directory) goes with the
// table: unlinked by the holder of the exclusive lock as its last act,
// every taker checking that it locked the file still at the path
// (lockfile.OpenLocked), and a late removal (a monitor unpublishing its
// ports after the sweep) not making it again (lockForRemoval).

// ourBridges are the names of the links marked as this table's bridges.
func (d *Dataplane) ourBridges(links []netlink.Link) map[string]string {
	prefix := d.opts.table + ":"
	out := map[string]string{}
	for _, l := range links {
		a := l.Attrs()
		if l.Type() == "bridge" && strings.HasPrefix(a.Alias, prefix) {
			out[a.Name] = strings.TrimPrefix(a.Alias, prefix)
		}
	}
	return out
}

// dropTableIfUnused deletes the tables (inet and bridge) unless the
// users' chain has rules: then the inet table stays, and only the bridge
// table, berth's alone, goes. The caller holds the lock exclusively and
// has seen no bridge of ours. It reports whether both tables are gone.
func (d *Dataplane) dropTableIfUnused() (bool, error) {
	b, err := d.newBatch()
	if err != nil {
		return false, err
	}
	inet, bridge, err := d.tablesExist(b)
	if err != nil || !inet && !bridge {
		return !inet && !bridge, err
	}
	keep := false
	if inet {
		// (The library's listings lose the errno: a missing chain is
		// looked for, not told by ENOENT.)
		have, err := d.chainNames(b)
		if err != nil {
			return false, fmt.Errorf("nftables table inet %s: listing chains: %w", d.opts.table, err)
		}
		if have[UserChain] {
			rules, err := b.c.GetRules(b.table, &nftables.Chain{Name: UserChain, Table: b.table})
			if err != nil {
				return false, fmt.Errorf("nftables table inet %s: listing chain %s: %w", d.opts.table, UserChain, err)
			}
			keep = len(rules) > 0 // the users' own rules stay, and the table with them
		}
		if !keep {
			b.c.DelTable(b.table)
		}
	}
	if bridge {
		b.c.DelTable(b.bridge)
	}
	if !keep || bridge {
		if err := b.flush(); err != nil && !isNotExist(err) {
			return false, fmt.Errorf("deleting nftables tables %s: %w", d.opts.table, err)
		}
	}
	return !keep, nil
}

// releaseIfUnused drops the table when no bridge of ours is left (after a
// network's removal). It waits for the exclusive lock: an attach holding
// the shared one may be making a bridge.
func (d *Dataplane) releaseIfUnused(ctx context.Context) error {
	unlock, err := d.lock(ctx, unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	links, err := dump(netlink.LinkList)
	if err != nil {
		return fmt.Errorf("listing links: %w", err)
	}
	if len(d.ourBridges(links)) > 0 {
		return nil
	}
	return d.dropTableAndLock()
}

// dropTableAndLock drops the table if unused and then the lock file; the
// caller holds the lock exclusively and releases it right after.
func (d *Dataplane) dropTableAndLock() error {
	// No bridge of ours is left: nor are rules for one in Docker's chain.
	if err := d.removeDockerUser(func(string) bool { return true }); err != nil {
		return err
	}
	gone, err := d.dropTableIfUnused()
	if err != nil || !gone {
		return err
	}
	// Its redirect programs, should any be left, are stale now.
	if err := d.sweepStaleRedirects(); err != nil {
		return err
	}
	if err := os.Remove(d.lockPath()); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("dataplane lock: %w", err)
	}
	// The redirect's lock goes too. Its users hold the plane's lock
	// (here held exclusively), but for RemoveSocketRedirect: the
	// lock's own protocol keeps that one safe.
	f, err := lockfile.OpenLocked(context.Background(), d.redirectLockPath(), unix.LOCK_EX, false)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("socket redirect lock: %w", err)
	}
	defer f.Close()
	if err := lockfile.Remove(f); err != nil {
		return fmt.Errorf("socket redirect lock: %w", err)
	}
	return nil
}

// lockForRemoval takes the lock shared for a change that only removes
// (unpublishing ports). It returns nil when the lock file and the table
// are both gone: nothing of ours is left to remove, and making the lock
// file again would leave it behind for good.
func (d *Dataplane) lockForRemoval(ctx context.Context) (func(), error) {
	f, err := lockfile.OpenLocked(ctx, d.lockPath(), unix.LOCK_SH, false)
	if err == nil {
		return func() { f.Close() }, nil
	}
	if !os.IsNotExist(err) {
		return nil, fmt.Errorf("dataplane lock %s: %w", d.lockPath(), err)
	}
	b, err := d.newBatch()
	if err != nil {
		return nil, err
	}
	if inet, bridge, err := d.tablesExist(b); err != nil || !inet && !bridge {
		return nil, err
	}
	return d.lock(ctx, unix.LOCK_SH)
}

// tablesExist reports whether berth's tables, inet and bridge, are in
// the kernel.
func (d *Dataplane) tablesExist(b *batch) (inet, bridge bool, err error) {
	if inet, err = d.tableExists(b, nftables.TableFamilyINet); err != nil {
		return false, false, err
	}
	bridge, err = d.tableExists(b, nftables.TableFamilyBridge)
	return inet, bridge, err
}

func (d *Dataplane) tableExists(b *batch, family nftables.TableFamily) (bool, error) {
	if _, err := b.c.ListTableOfFamily(d.opts.table, family); err != nil {
		if isNotExist(err) {
			return false, nil
		}
		return false, fmt.Errorf("nftables table %s: %w", d.opts.table, err)
	}
	return true, nil
}

package dataplane

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A root's kernel state lives as long as it has a bridge: the table goes
// with the last one (RemoveNetwork, or Reconcile told of no network that
// has endpoints or a bridge), unless the users' chain holds rules of
// theirs, which berth never deletes. Without this every root that ever
// ran a container (every test root) left a table in the kernel for good.

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

// dropTableIfUnused deletes the table unless the users' chain has rules.
// The caller holds the lock exclusively and has seen no bridge of ours.
// It reports whether the table is gone.
func (d *Dataplane) dropTableIfUnused() (bool, error) {
	b, err := d.newBatch()
	if err != nil {
		return false, err
	}
	if ok, err := d.tableExists(b); err != nil || !ok {
		return !ok, err
	}
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
		if len(rules) > 0 {
			return false, nil // the users' own rules stay, and the table with them
		}
	}
	b.c.DelTable(b.table)
	if err := b.flush(); err != nil && !isNotExist(err) {
		return false, fmt.Errorf("deleting nftables table inet %s: %w", d.opts.table, err)
	}
	return true, nil
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
	_, err = d.dropTableIfUnused()
	return err
}

// tableExists reports whether berth's table is in the kernel.
func (d *Dataplane) tableExists(b *batch) (bool, error) {
	if _, err := b.c.ListTableOfFamily(d.opts.table, nftables.TableFamilyINet); err != nil {
		if isNotExist(err) {
			return false, nil
		}
		return false, fmt.Errorf("nftables table inet %s: %w", d.opts.table, err)
	}
	return true, nil
}

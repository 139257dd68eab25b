package dataplane

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Reconcile makes the kernel match the given networks and endpoints after
// a crash or reboot: berth's bridges, veths, chains and published ports
// that are not listed are removed; listed networks that have endpoints or
// a bridge are ensured (the others are made by their next attach, as a
// bridge is made on first use: a sweep never creates one for nothing),
// and listed endpoints whose veth is gone are attached again when their
// namespace still exists. With no bridge left, the table goes too. It
// holds the dataplane lock exclusively, so no attach runs meanwhile; the
// caller must build its lists under its own lock, the one its attaches
// take before recording an endpoint.
func (d *Dataplane) Reconcile(ctx context.Context, nets []Network, eps []Endpoint) error {
	byID := map[string]Network{}
	bridges := map[string]bool{}
	for _, n := range nets {
		if err := validateNetwork(n); err != nil {
			return err
		}
		byID[n.ID] = n
		bridges[n.Bridge] = true
	}
	unlock, err := d.lock(ctx, unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	if err := d.refuseNewer(); err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}

	links, err := dump(netlink.LinkList)
	if err != nil {
		return fmt.Errorf("reconcile: listing links: %w", err)
	}
	var errs []error
	withEndpoints := map[string]bool{}
	for _, ep := range eps {
		withEndpoints[ep.NetworkID] = true
	}
	existing := d.ourBridges(links)
	ensured := 0
	ensuredBridges := map[string]bool{}
	for _, n := range nets {
		if !withEndpoints[n.ID] && existing[n.Bridge] != n.ID {
			continue
		}
		ensured++
		ensuredBridges[n.Bridge] = true
		if err := d.ensureNetwork(n, true); err != nil {
			errs = append(errs, err)
		}
	}
	// Berth's rules in Docker's DOCKER-USER of bridges not ensured.
	on := d.dockerUserOn()
	if err := d.removeDockerUser(func(br string) bool { return !on || !ensuredBridges[br] }); err != nil {
		errs = append(errs, fmt.Errorf("reconcile: %w", err))
	}
	wantVeth := map[string]bool{}
	for _, ep := range eps {
		wantVeth[ep.HostIfName] = true
	}
	// Our bridges (listed or stale) by index, to find the veths on them.
	ours := map[int]bool{}
	prefix := d.opts.table + ":"
	for _, l := range links {
		a := l.Attrs()
		if l.Type() != "bridge" || !strings.HasPrefix(a.Alias, prefix) {
			continue
		}
		// Veths on stale bridges go too: deleting a bridge only
		// releases them.
		ours[a.Index] = true
		id := strings.TrimPrefix(a.Alias, prefix)
		if n, ok := byID[id]; ok && n.Bridge == a.Name {
			continue
		}
		if err := d.removeNetworkRules(a.Name); err != nil {
			errs = append(errs, fmt.Errorf("reconcile: rules of stale bridge %s: %w", a.Name, err))
		}
		if err := netlink.LinkDel(l); err != nil && !isLinkNotFound(err) {
			errs = append(errs, fmt.Errorf("reconcile: deleting stale bridge %s: %w", a.Name, err))
		}
	}
	present := map[string]bool{}
	for _, l := range links {
		a := l.Attrs()
		if l.Type() != "veth" || !ours[a.MasterIndex] {
			continue
		}
		if wantVeth[a.Name] {
			present[a.Name] = true
			continue
		}
		if err := netlink.LinkDel(l); err != nil && !isLinkNotFound(err) {
			errs = append(errs, fmt.Errorf("reconcile: deleting stale veth %s: %w", a.Name, err))
		}
	}

	// Without tables (none of its networks was ensured) there are no
	// rules to sweep.
	b, err := d.newBatch()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	inet, bridge, err := d.tablesExist(b)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if !inet && !bridge && ensured == 0 {
		if len(errs) == 0 {
			if err := d.dropTableAndLock(); err != nil {
				errs = append(errs, fmt.Errorf("reconcile: %w", err))
			}
		}
		return errors.Join(errs...)
	}

	// Chains and dispatch elements of bridges that are not listed (the
	// bridge itself may be gone already, after a reboot or a crash).
	if stale, err := d.staleRuleBridges(bridges); err != nil {
		errs = append(errs, err)
	} else {
		for _, br := range stale {
			if err := d.removeNetworkRules(br); err != nil {
				errs = append(errs, fmt.Errorf("reconcile: rules of stale bridge %s: %w", br, err))
			}
		}
	}

	// Endpoints: attach again what lost its veth, then make the DNAT maps
	// hold exactly the listed endpoints' ports.
	var want []element
	for _, ep := range eps {
		n, ok := byID[ep.NetworkID]
		if !ok {
			errs = append(errs, fmt.Errorf("reconcile: endpoint of container %s: network %s is not listed", ep.ContainerID, ep.NetworkID))
			continue
		}
		if err := validateEndpoint(n, ep); err != nil {
			errs = append(errs, err)
			continue
		}
		els, err := endpointElements(n, ep)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		guards, err := guardElements(n, ep)
		if err != nil {
			// Its published ports stay; its port goes unguarded.
			errs = append(errs, fmt.Errorf("reconcile: endpoint of container %s: %w", ep.ContainerID, err))
		}
		if !present[ep.HostIfName] {
			if _, err := netlink.LinkByName(ep.HostIfName); err == nil {
				present[ep.HostIfName] = true // on a bridge that was just remade? keep
			} else if err := d.addGuards(ep.HostIfName, guards); err != nil {
				errs = append(errs, fmt.Errorf("reconcile: endpoint of container %s: %w", ep.ContainerID, err))
				continue
			} else if err := d.addVeth(n, ep); err != nil {
				if errors.Is(err, unix.ENOENT) || errors.Is(err, errNoNetNS) {
					continue // its namespace is gone: the caller's records are stale
				}
				errs = append(errs, fmt.Errorf("reconcile: %w", err))
				continue
			}
		}
		want = append(want, els...)
		want = append(want, guards...)
	}
	if err := d.syncDNAT(want); err != nil {
		errs = append(errs, fmt.Errorf("reconcile: published ports: %w", err))
	}
	if err := d.redirectSync(ctx, want); err != nil {
		errs = append(errs, fmt.Errorf("reconcile: published ports: %w", err))
	}
	if ensured == 0 && len(errs) == 0 {
		// Every bridge of ours was stale and is gone.
		if err := d.dropTableAndLock(); err != nil {
			errs = append(errs, fmt.Errorf("reconcile: %w", err))
		}
	}
	// Other roots' too: a root deleted with containers on it reconciles
	// no more.
	if err := d.sweepStaleRedirects(); err != nil {
		errs = append(errs, fmt.Errorf("reconcile: %w", err))
	}
	return errors.Join(errs...)
}

// staleRuleBridges are the bridges that have chains or a dispatch
// element in the table but are not listed.
func (d *Dataplane) staleRuleBridges(listed map[string]bool) ([]string, error) {
	b, err := d.newBatch()
	if err != nil {
		return nil, err
	}
	chains, err := b.c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("reconcile: listing chains: %w", err)
	}
	seen := map[string]bool{}
	var stale []string
	note := func(br string) {
		if br != "" && !listed[br] && !seen[br] {
			seen[br] = true
			stale = append(stale, br)
		}
	}
	for _, c := range chains {
		if c.Table.Name != d.opts.table {
			continue
		}
		for _, p := range []string{"masq-from-", "masq-to-", "to-", "from-"} {
			if strings.HasPrefix(c.Name, p) {
				note(strings.TrimPrefix(c.Name, p))
				break
			}
		}
	}
	got, err := b.c.GetSetElements(b.sets[setBridges])
	if err != nil && !isNotExist(err) {
		return nil, fmt.Errorf("reconcile: listing bridges: %w", err)
	}
	guarded, err := d.guardChainNames(b)
	if err != nil {
		return nil, fmt.Errorf("reconcile: listing chains: %w", err)
	}
	for c := range guarded {
		if strings.HasPrefix(c, "net-") {
			note(strings.TrimPrefix(c, "net-"))
		}
	}
	for _, e := range got {
		note(strings.TrimRight(string(e.Key), "\x00"))
	}
	return stale, nil
}

// syncDNAT makes the DNAT maps and the ports' guards hold exactly want,
// in one transaction.
func (d *Dataplane) syncDNAT(want []element) error {
	b, err := d.newBatch()
	if err != nil {
		return err
	}
	wanted := map[string]bool{}
	for _, e := range want {
		wanted[e.set+"\x00"+string(e.key)+"\x00"+elementValue(e.set, e.val, e.verdict)] = true
	}
	// A table's sets are listed only when it is there: the library's
	// listings lose the errno, a missing table cannot be told apart.
	inet, bridge, err := d.tablesExist(b)
	if err != nil {
		return err
	}
	var sets []string
	if inet {
		sets = append(sets, mapDNAT4IP, mapDNAT4, mapDNAT6IP, mapDNAT6)
	}
	if bridge {
		sets = append(sets, guardSetNames[:]...)
	}
	var del []element
	for _, s := range sets {
		got, err := b.c.GetSetElements(b.sets[s])
		if err != nil {
			return err
		}
		for _, g := range got {
			k := s + "\x00" + string(g.Key) + "\x00" + elementValue(s, g.Val, nil)
			if wanted[k] {
				continue
			}
			del = append(del, element{set: s, key: g.Key})
		}
	}
	if err := b.delElements(del, false); err != nil {
		return err
	}
	if err := b.addElements(want); err != nil {
		return err
	}
	return b.flush()
}

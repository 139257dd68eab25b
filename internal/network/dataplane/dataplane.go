package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/berth-dev/berth/internal/lockfile"
	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Dataplane makes the kernel match berth's networks and endpoints. It is
// stateless and cheap to make; any number of berth processes may use it
// at once.
//
// A container's life, as its monitor would drive it:
//
//	closer, err := d.ReservePorts(ctx, ports)  // held while it runs; fills HostPort 0
//	err = d.EnsureNetwork(ctx, n)              // nothing to do when set up already
//	err = d.AddEndpoint(ctx, n, ep)            // ep.Ports = ports
//	... the container runs, is restarted (AddEndpoint again keeps the veth) ...
//	err = d.ReleaseEndpoint(ctx, n, ep)        // stops for good; then unmount ep.NetNSPath
//	closer.Close()
//
// RemoveEndpoint instead of ReleaseEndpoint for a disconnect while the
// namespace lives on; Reconcile after a crash or a reboot.
type Dataplane struct {
	opts options
}

type options struct {
	table   string
	lockDir string
	// noRedirect turns the socket redirect off (tests of the DNAT
	// path); cgroup2 overrides where the cgroup2 root is found.
	noRedirect bool
	cgroup2    string
	version    int // of the ruleset written: rulesetVersion, other in tests
	// dockerUser says whether berth may add its rules to Docker's
	// DOCKER-USER chain (dockeruser.go); nil means yes.
	dockerUser func() bool
}

// Option changes a Dataplane's defaults.
type Option func(*options)

// WithTable names berth's nftables table (default "berth"). Bridges are
// marked as berth's with this name (their interface alias is
// "<table>:<network ID>"), so a Dataplane with another table name never
// sees or reconciles them: tests use their own.
func WithTable(name string) Option { return func(o *options) { o.table = name } }

// WithLockDir sets the directory of the lock file that keeps Reconcile
// from running beside an attach (default /run/berth-dataplane).
func WithLockDir(dir string) Option { return func(o *options) { o.lockDir = dir } }

// WithDockerUserChain says whether berth adds its rules to Docker's
// DOCKER-USER chain when there is one (default true; dockeruser.go).
func WithDockerUserChain(on bool) Option {
	return WithDockerUserChainFunc(func() bool { return on })
}

// WithDockerUserChainFunc is WithDockerUserChain asked at each change, for
// a setting read from a file that may change meanwhile.
func WithDockerUserChainFunc(on func() bool) Option { return func(o *options) { o.dockerUser = on } }

// New returns a Dataplane.
func New(opts ...Option) *Dataplane {
	o := options{table: "berth", lockDir: "/run/berth-dataplane", version: rulesetVersion}
	for _, f := range opts {
		f(&o)
	}
	return &Dataplane{opts: o}
}

// Table is the name of berth's nftables table (family inet).
func (d *Dataplane) Table() string { return d.opts.table }

func (d *Dataplane) bridgeAlias(networkID string) string { return d.opts.table + ":" + networkID }

// lock takes the dataplane lock: shared for changes of single networks
// and endpoints (they never clash: each touches its own links, chains and
// map keys), exclusive for Reconcile, which removes what it was not told
// about and must not remove an endpoint being attached meanwhile.
// The lock file goes with the table (lifecycle.go), hence OpenLocked.
func (d *Dataplane) lock(ctx context.Context, how int) (func(), error) {
	if err := os.MkdirAll(d.opts.lockDir, 0o700); err != nil {
		return nil, fmt.Errorf("dataplane lock: %w", err)
	}
	f, err := lockfile.OpenLocked(ctx, d.lockPath(), how, true)
	if err != nil {
		return nil, fmt.Errorf("dataplane lock %s: %w", d.lockPath(), err)
	}
	return func() { f.Close() }, nil
}

func (d *Dataplane) lockPath() string { return filepath.Join(d.opts.lockDir, d.opts.table+".lock") }

// LockFiles are the paths of the plane's lock files (its own and its
// socket redirect's), for removing a root whose berth processes are all
// gone without berth: nobody holds or waits for them then.
func (d *Dataplane) LockFiles() []string { return []string{d.lockPath(), d.redirectLockPath()} }

func validateNetwork(n Network) error {
	if n.ID == "" {
		return errdefs.InvalidArgument("dataplane: network without an ID")
	}
	if n.Bridge == "" || len(n.Bridge) >= unix.IFNAMSIZ {
		return errdefs.InvalidArgument("network %s: bridge name %q must be 1 to %d characters", n.ID, n.Bridge, unix.IFNAMSIZ-1)
	}
	if len(n.Gateways) != len(n.Subnets) {
		return errdefs.InvalidArgument("network %s: %d subnets but %d gateways", n.ID, len(n.Subnets), len(n.Gateways))
	}
	for i, s := range n.Subnets {
		if !s.Contains(n.Gateways[i]) {
			return errdefs.InvalidArgument("network %s: gateway %s is not in subnet %s", n.ID, n.Gateways[i], s)
		}
	}
	return nil
}

func (n Network) mtu() int {
	if n.MTU > 0 {
		return n.MTU
	}
	return 1500
}

func (n Network) hasV6() bool {
	for _, s := range n.Subnets {
		if s.Addr().Is6() {
			return true
		}
	}
	return false
}

// EnsureNetwork creates or completes a network's bridge, sysctls and
// rules. It is idempotent and safe beside other berth processes doing the
// same.
func (d *Dataplane) EnsureNetwork(ctx context.Context, n Network) error {
	if err := validateNetwork(n); err != nil {
		return err
	}
	unlock, err := d.lock(ctx, unix.LOCK_SH)
	if err != nil {
		return err
	}
	defer unlock()
	return d.ensureNetwork(n, false)
}

// ensureNetwork sets a network up: its bridge and berth's tables, then
// its rules in Docker's DOCKER-USER chain, if any.
func (d *Dataplane) ensureNetwork(n Network, force bool) error {
	if err := d.ensureNetworkTables(n, force); err != nil {
		return err
	}
	return d.ensureDockerUser(n.Bridge)
}

// ensureNetworkTables sets a network's bridge and tables up. Unless forced, a network whose chain
// is in the inet table with this version's marker is taken as complete
// (one dump: this runs for every container's start); AddEndpoint forces
// it when its elements find a chain or table missing, Reconcile always.
func (d *Dataplane) ensureNetworkTables(n Network, force bool) error {
	if err := ensureForwarding(n.hasV6()); err != nil {
		return err
	}
	if err := d.ensureBridge(n); err != nil {
		return err
	}
	b, err := d.newBatch()
	if err != nil {
		return err
	}
	// What is there already is left alone: rewriting it would delete
	// rules, and a transaction that deletes anything waits for an RCU
	// grace period (10-30 ms measured here).
	have, err := d.chainNames(b)
	if err != nil {
		return fmt.Errorf("network %s: listing nftables chains: %w", n.ID, err)
	}
	older, err := d.checkVersion(have)
	if err != nil {
		return fmt.Errorf("network %s: %w", n.ID, err)
	}
	chains, els := networkObjects(n)
	// The marker vouches for both tables: they are written in one
	// transaction, and the version covers the bridge table's static
	// part too.
	current := have[markerName(d.opts.version)] && len(older) == 0
	inetDone := current && have[chains[0].name]
	if inetDone && !force {
		return nil
	}
	bhave, err := d.guardChainNames(b)
	if err != nil {
		return fmt.Errorf("network %s: listing nftables chains: %w", n.ID, err)
	}
	guard := guardNetworkChain(n)
	if inetDone && bhave[guardStaticChain] && bhave[guard.name] {
		// Forced, with every chain there: only the sets, in case one
		// is missing (no-op adds, nothing deleted, no RCU wait).
		if err := b.addGuardSets(); err != nil {
			return err
		}
		if err := b.flush(); err != nil {
			return fmt.Errorf("network %s: nftables table bridge %s: %w", n.ID, d.opts.table, err)
		}
		return nil
	}
	if !inetDone {
		if !current {
			if err := b.ensureStatic(d.opts.version, older); err != nil {
				return err
			}
		}
		b.addChains(chains)
		if err := b.addElements(els); err != nil {
			return err
		}
	}
	if !current || !bhave[guardStaticChain] {
		if err := b.ensureGuardStatic(); err != nil {
			return err
		}
	} else if err := b.addGuardSets(); err != nil {
		// Only the sets (no-ops when there, nothing deleted): a set
		// may be missing where the chains are not (made by a build of
		// this version from before it had them).
		return err
	}
	b.addChainsIn(b.bridge, []chainSpec{guard})
	if err := b.flush(); err != nil {
		return fmt.Errorf("network %s: nftables tables inet and bridge %s: %w", n.ID, d.opts.table, err)
	}
	return nil
}

// chainNames are the names of the chains in berth's table.
func (d *Dataplane) chainNames(b *batch) (map[string]bool, error) {
	return d.chainNamesOf(b, nftables.TableFamilyINet)
}

// chainNamesOf are the names of the chains in berth's table of family.
func (d *Dataplane) chainNamesOf(b *batch, family nftables.TableFamily) (map[string]bool, error) {
	chains, err := b.c.ListChainsOfTableFamily(family)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, c := range chains {
		if c.Table.Name == d.opts.table {
			have[c.Name] = true
		}
	}
	return have, nil
}

// RemoveNetwork removes a network's rules and bridge, and the veths still
// on it (their published ports are for RemoveEndpoint or Reconcile); with
// the last bridge, the table goes (lifecycle.go). Idempotent.
func (d *Dataplane) RemoveNetwork(ctx context.Context, n Network) error {
	if err := validateNetwork(n); err != nil {
		return err
	}
	unlock, err := d.lock(ctx, unix.LOCK_SH)
	if err != nil {
		return err
	}
	err = d.removeNetwork(n)
	unlock()
	if err != nil {
		return err
	}
	return d.releaseIfUnused(ctx)
}

func (d *Dataplane) removeNetwork(n Network) error {
	if err := d.removeDockerUserBridge(n.Bridge); err != nil {
		return fmt.Errorf("network %s: %w", n.ID, err)
	}
	if err := d.removeNetworkRules(n.Bridge); err != nil {
		return fmt.Errorf("network %s: removing the rules of %s: %w", n.ID, n.Bridge, err)
	}
	return d.deleteBridge(n.Bridge, n.ID)
}

// removeNetworkRules deletes a bridge's chains and dispatch elements in
// one transaction. What to delete is read from the kernel first, so that
// it works whatever shape (internal, masquerading) the network had; a
// concurrent removal of the same network makes the transaction fail with
// ENOENT, and it is tried again.
func (d *Dataplane) removeNetworkRules(bridge string) error {
	var err error
	for range 3 {
		if err = d.removeNetworkRulesOnce(bridge); err == nil || !isNotExist(err) {
			break
		}
	}
	return err
}

func (d *Dataplane) removeNetworkRulesOnce(bridge string) error {
	b, err := d.newBatch()
	if err != nil {
		return err
	}
	// The bridge table's part first: its ports' elements jump to the
	// network's chain, which can only go after them.
	guarded, err := b.removeGuardNetwork(bridge)
	if err != nil {
		return err
	}
	if _, err := b.c.ListTableOfFamily(d.opts.table, nftables.TableFamilyINet); err != nil {
		if isNotExist(err) {
			if guarded {
				return b.flush()
			}
			return nil
		}
		return err
	}
	key := string(ifnameKey(bridge))
	var els []element
	for _, s := range []string{setBridges, mapFwdOut, mapFwdIn, mapFwdFrom, mapNATOut, mapNATIn} {
		got, err := b.c.GetSetElements(b.sets[s])
		if err != nil {
			return err
		}
		for _, g := range got {
			if string(g.Key) == key {
				els = append(els, element{set: s, key: g.Key})
			}
		}
	}
	if err := b.delElements(els, false); err != nil {
		return err
	}
	b.delChains([]chainSpec{{name: toChain(bridge)}, {name: masqToChain(bridge)}, {name: masqFromChain(bridge)}, {name: fromChain(bridge)}})
	return b.flush()
}

// AddEndpoint attaches a container's network namespace to a network and
// publishes its ports. On failure it leaves nothing behind.
func (d *Dataplane) AddEndpoint(ctx context.Context, n Network, ep Endpoint) (err error) {
	if err := validateEndpoint(n, ep); err != nil {
		return err
	}
	els, err := endpointElements(n, ep)
	if err != nil {
		return errdefs.InvalidArgument("container %s: %v", ep.ContainerID, err)
	}
	guards, err := guardElements(n, ep)
	if err != nil {
		return errdefs.InvalidArgument("container %s: %v", ep.ContainerID, err)
	}
	unlock, err := d.lock(ctx, unix.LOCK_SH)
	if err != nil {
		return err
	}
	defer unlock()
	// The port's guards (and the published ports, in the same
	// transaction) before the veth: its container never has a moment on
	// the bridge unguarded, and a port taken fails before any link is
	// made.
	all := append(guards, els...)
	err = d.addElements(all)
	if err != nil && isNotExist(err) {
		// A chain or table is missing (deleted, or a network set up
		// by an older berth): set the network up fully, once.
		if err = d.ensureNetwork(n, true); err == nil {
			err = d.addElements(all)
		}
	}
	if err != nil && isExist(err) {
		err = d.replaceStale(err, ep.HostIfName, guards, els, ep.PortsReserved)
	}
	if err != nil {
		if isExist(err) {
			return errdefs.Conflict("container %s: a published port is already allocated to another container: %v", ep.ContainerID, err)
		}
		if isNotExist(err) {
			return errdefs.Conflict("container %s: network %s is not set up (EnsureNetwork first): %v", ep.ContainerID, n.ID, err)
		}
		return fmt.Errorf("container %s: publishing ports: %w", ep.ContainerID, err)
	}
	if err := d.addVeth(n, ep); err != nil {
		if rerr := d.removeEndpointElements(n, ep, els); rerr != nil {
			err = errors.Join(err, fmt.Errorf("container %s: undoing its rules: %w", ep.ContainerID, rerr))
		}
		return err
	}
	// Best effort: the DNAT elements serve every connection already,
	// the redirect only speeds up the host's own.
	_ = d.redirectAdd(ctx, els)
	return nil
}

func validateEndpoint(n Network, ep Endpoint) error {
	if err := validateNetwork(n); err != nil {
		return err
	}
	if ep.NetworkID != n.ID {
		return errdefs.InvalidArgument("endpoint of container %s is on network %s, not %s", ep.ContainerID, ep.NetworkID, n.ID)
	}
	if ep.HostIfName == "" || len(ep.HostIfName) >= unix.IFNAMSIZ || ep.IfName == "" || len(ep.IfName) >= unix.IFNAMSIZ {
		return errdefs.InvalidArgument("container %s: interface names %q and %q must be 1 to %d characters", ep.ContainerID, ep.HostIfName, ep.IfName, unix.IFNAMSIZ-1)
	}
	for _, a := range ep.Addresses {
		ok := false
		for _, s := range n.Subnets {
			ok = ok || s.Contains(a.Addr())
		}
		if !ok {
			return errdefs.InvalidArgument("container %s: address %s is in no subnet of network %s", ep.ContainerID, a, n.ID)
		}
	}
	return nil
}

// RemoveEndpoint removes a container's ports and veth pair. Idempotent:
// the container, its namespace or the whole network may be gone.
func (d *Dataplane) RemoveEndpoint(ctx context.Context, n Network, ep Endpoint) error {
	if err := validateEndpoint(n, ep); err != nil {
		return err
	}
	els, err := endpointElements(n, ep)
	if err != nil {
		return errdefs.InvalidArgument("container %s: %v", ep.ContainerID, err)
	}
	unlock, err := d.lockForRemoval(ctx)
	if err != nil {
		return err
	}
	if unlock == nil {
		return d.deleteLink(ep.HostIfName) // no table: nothing published
	}
	defer unlock()
	if err := d.redirectRemove(ctx, els); err != nil {
		return fmt.Errorf("container %s: unpublishing ports: %w", ep.ContainerID, err)
	}
	// The link before the guards: its namespace lives on, and its port
	// must not be on the bridge without them.
	if err := d.deleteLink(ep.HostIfName); err != nil {
		return err
	}
	if err := d.removeEndpointElements(n, ep, els); err != nil {
		return fmt.Errorf("container %s: unpublishing ports: %w", ep.ContainerID, err)
	}
	if len(els) > 0 {
		forgetFlows(ep)
	}
	return nil
}

// ReleaseEndpoint is RemoveEndpoint for a container whose network
// namespace is being destroyed (its processes gone, NetNSPath about to be
// unmounted): it unpublishes the ports (and deletes the port's guards in
// that transaction; without ports it leaves them, see portDigest) and
// leaves the veth pair to the kernel, which deletes it with the
// namespace, in the background. Deleting
// a network device blocks the caller for RCU grace periods (10-25 ms
// measured here, several times the whole budget of a bridge attachment),
// a namespace's devices go without anyone waiting. A namespace that stays
// alive keeps its veth: use RemoveEndpoint for a disconnect; Reconcile
// removes veths of endpoints it is not given.
func (d *Dataplane) ReleaseEndpoint(ctx context.Context, n Network, ep Endpoint) error {
	if err := validateEndpoint(n, ep); err != nil {
		return err
	}
	els, err := endpointElements(n, ep)
	if err != nil {
		return errdefs.InvalidArgument("container %s: %v", ep.ContainerID, err)
	}
	if len(els) == 0 {
		// The port's guards stay, lazily: deleting them would be a
		// transaction of its own, waiting ~10 ms for an RCU grace
		// period, and they match no interface once the namespace and
		// its veth are gone. A name used again gets its own guards
		// only (portDigest); ReleaseGuards deletes them after the
		// caller's report (the container stopped or was removed),
		// Reconcile and RemoveNetwork otherwise.
		return nil
	}
	unlock, err := d.lockForRemoval(ctx)
	if err != nil || unlock == nil {
		return err // nil unlock: no table, nothing published or guarded
	}
	defer unlock()
	if err := d.redirectRemove(ctx, els); err != nil {
		return fmt.Errorf("container %s: unpublishing ports: %w", ep.ContainerID, err)
	}
	if err := d.removeEndpointElements(n, ep, els); err != nil {
		return fmt.Errorf("container %s: unpublishing ports: %w", ep.ContainerID, err)
	}
	if len(els) > 0 {
		forgetFlows(ep)
	}
	return nil
}

// removeElements deletes DNAT elements, and extra (elements listed from
// the kernel just before), in one transaction: adding each DNAT element
// first makes its delete idempotent. If a key now maps to another
// container (ours went and another took the port), that add fails; then
// only the keys still mapping to our values are deleted. With extra, a
// missing element (ENOENT) is the caller's to handle: one of extra may
// have been deleted meanwhile.
func (d *Dataplane) removeElements(els, extra []element) error {
	err := d.removeElementsOnce(els, extra)
	if isNotExist(err) && len(extra) == 0 {
		return nil // no table or map: nothing to remove
	}
	return err
}

// removeElementsOnce is removeElements that reports a missing table,
// set or chain (ENOENT).
func (d *Dataplane) removeElementsOnce(els, extra []element) error {
	if len(els) == 0 && len(extra) == 0 {
		return nil
	}
	b, err := d.newBatch()
	if err != nil {
		return err
	}
	if err := b.delElements(els, true); err != nil {
		return err
	}
	if err := b.delElements(extra, false); err != nil {
		return err
	}
	err = b.flush()
	if err == nil || !isExist(err) {
		return err
	}
	mine, err := d.presentElements(els)
	if err != nil || len(mine)+len(extra) == 0 {
		return err
	}
	if b, err = d.newBatch(); err != nil {
		return err
	}
	if err := b.delElements(keysOnly(append(mine, extra...)), false); err != nil {
		return err
	}
	return b.flush()
}

// presentElements are those of els that are in the kernel with the same
// value.
func (d *Dataplane) presentElements(els []element) ([]element, error) {
	b, err := d.newBatch()
	if err != nil {
		return nil, err
	}
	have := map[string]map[string]string{}
	var out []element
	for _, e := range els {
		m, ok := have[e.set]
		if !ok {
			got, err := b.c.GetSetElements(b.sets[e.set])
			if err != nil {
				if isNotExist(err) {
					continue
				}
				return nil, err
			}
			m = map[string]string{}
			for _, g := range got {
				m[string(g.Key)] = elementValue(e.set, g.Val, nil)
			}
			have[e.set] = m
		}
		if v, ok := m[string(e.key)]; ok && v == elementValue(e.set, e.val, e.verdict) {
			out = append(out, e)
		}
	}
	return out, nil
}

// addrFamily is the netlink family of an address.
func addrFamily(a netip.Addr) int {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

package dataplane

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ensureBridge creates the bridge or completes it: up, MTU, gateway
// addresses, route_localnet. A link of that name that is not berth's
// bridge for this network is a conflict, never taken over.
func (d *Dataplane) ensureBridge(n Network) error {
	alias := d.bridgeAlias(n.ID)
	link, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		if !isLinkNotFound(err) {
			return fmt.Errorf("network %s: bridge %s: %w", n.ID, n.Bridge, err)
		}
		mac := make(net.HardwareAddr, 6)
		rand.Read(mac)
		mac[0] = mac[0]&^1 | 2 // unicast, locally administered
		// An address set at creation never changes: otherwise the
		// bridge takes the lowest of its ports' and every container's
		// neighbour entry for the gateway goes stale on each attach.
		// The alias that marks it as berth's is set below: the kernel
		// ignores one given at creation.
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: n.Bridge, MTU: n.mtu(), HardwareAddr: mac, TxQLen: -1}}
		if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("network %s: creating bridge %s: %w", n.ID, n.Bridge, err)
		}
		if link, err = netlink.LinkByName(n.Bridge); err != nil {
			return fmt.Errorf("network %s: bridge %s: %w", n.ID, n.Bridge, err)
		}
	}
	have, err := dump(func() ([]netlink.Addr, error) { return netlink.AddrList(link, unix.AF_UNSPEC) })
	if err != nil {
		return fmt.Errorf("network %s: addresses of %s: %w", n.ID, n.Bridge, err)
	}
	if link.Type() != "bridge" || link.Attrs().Alias != alias {
		// Just made (here or by another berth process), or left
		// without its alias by a crash: adopt a bridge with no alias
		// and no address but ours; anything else is somebody else's.
		if link.Type() != "bridge" || link.Attrs().Alias != "" || !onlyGateways(have, n) {
			return errdefs.Conflict("network %s: interface %s exists and is not this network's bridge (type %s, alias %q)", n.ID, n.Bridge, link.Type(), link.Attrs().Alias)
		}
		if err := netlink.LinkSetAlias(link, alias); err != nil {
			return fmt.Errorf("network %s: marking bridge %s: %w", n.ID, n.Bridge, err)
		}
	}
	if !n.ICC {
		if err := enableBridgeNetfilter(n, link.Attrs().Index); err != nil {
			return err
		}
	}
	if link.Attrs().MTU != n.mtu() {
		if err := netlink.LinkSetMTU(link, n.mtu()); err != nil {
			return fmt.Errorf("network %s: MTU of %s: %w", n.ID, n.Bridge, err)
		}
	}
	// A container can send router advertisements on its link: the host
	// must never take a default route or an address from them (the
	// bridge's default accept_ra=1 is honoured while IPv6 forwarding is
	// off, i.e. on hosts with IPv4-only networks). Without IPv6 in the
	// kernel there is nothing to turn off.
	if err := writeSysctl("/proc/sys/net/ipv6/conf/"+n.Bridge+"/accept_ra", "0"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if n.hasV6() {
		if err := writeSysctl("/proc/sys/net/ipv6/conf/"+n.Bridge+"/disable_ipv6", "0"); err != nil {
			return err
		}
	}
	for i, s := range n.Subnets {
		want := netip.PrefixFrom(n.Gateways[i], s.Bits())
		found := false
		for _, a := range have {
			if p, ok := netipPrefix(a.IPNet); ok && p == want {
				found = true
			}
		}
		if found {
			continue
		}
		addr := &netlink.Addr{IPNet: ipNet(want)}
		if want.Addr().Is6() {
			addr.Flags = unix.IFA_F_NODAD // the gateway must answer at once
		}
		if err := netlink.AddrAdd(link, addr); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("network %s: address %s on %s: %w", n.ID, want, n.Bridge, err)
		}
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(link); err != nil {
			return fmt.Errorf("network %s: bringing %s up: %w", n.ID, n.Bridge, err)
		}
	}
	// Ports published on 127.0.0.1 are DNATed to the bridge with their
	// 127/8 source; without route_localnet the kernel drops them (and
	// the replies) as martians. The guard chain keeps containers from
	// using it to reach the host's loopback.
	return writeSysctl("/proc/sys/net/ipv4/conf/"+n.Bridge+"/route_localnet", "1")
}

// enableBridgeNetfilter makes the bridge pass its bridged traffic to the
// IP hooks (br_netfilter), where berth's forward chain drops traffic
// between its ports when ICC is off. It is set on this bridge only, not
// through the host-wide bridge-nf-call-iptables; the module itself must
// be loaded (berth runs no modprobe; Docker does, for the same reason).
func enableBridgeNetfilter(n Network, index int) error {
	if _, err := os.Stat("/proc/sys/net/bridge"); err != nil {
		return errdefs.Unavailable("network %s: com.docker.network.bridge.enable_icc=false needs the br_netfilter kernel module: run modprobe br_netfilter", n.ID)
	}
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	req.AddData(msg)
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("bridge"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	data.AddRtAttr(nl.IFLA_BR_NF_CALL_IPTABLES, []byte{1})
	data.AddRtAttr(nl.IFLA_BR_NF_CALL_IP6TABLES, []byte{1})
	req.AddData(info)
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return fmt.Errorf("network %s: br_netfilter on %s: %w", n.ID, n.Bridge, err)
	}
	return nil
}

// deleteBridge deletes a bridge if it is berth's (by its alias).
func (d *Dataplane) deleteBridge(name, networkID string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		if isLinkNotFound(err) {
			return nil
		}
		return fmt.Errorf("network %s: bridge %s: %w", networkID, name, err)
	}
	if link.Type() != "bridge" || link.Attrs().Alias != d.bridgeAlias(networkID) {
		return nil // not ours: leave it
	}
	// Deleting a bridge only releases its ports.
	links, err := dump(netlink.LinkList)
	if err != nil {
		return fmt.Errorf("network %s: listing links: %w", networkID, err)
	}
	for _, l := range links {
		if l.Attrs().MasterIndex == link.Attrs().Index && l.Type() == "veth" {
			if err := netlink.LinkDel(l); err != nil && !isLinkNotFound(err) {
				return fmt.Errorf("network %s: deleting %s: %w", networkID, l.Attrs().Name, err)
			}
		}
	}
	if err := netlink.LinkDel(link); err != nil && !isLinkNotFound(err) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("network %s: deleting bridge %s: %w", networkID, name, err)
	}
	return nil
}

// addVeth creates the veth pair with its container end made directly in
// the container's namespace under its final name, MAC and MTU (one
// request, no move or rename), then sets addresses and routes inside.
func (d *Dataplane) addVeth(n Network, ep Endpoint) (err error) {
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		if isLinkNotFound(err) {
			return errdefs.Conflict("container %s: network %s has no bridge %s (EnsureNetwork first)", ep.ContainerID, n.ID, n.Bridge)
		}
		return fmt.Errorf("container %s: bridge %s: %w", ep.ContainerID, n.Bridge, err)
	}
	nsFd, err := unix.Open(ep.NetNSPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("container %s: network namespace %s: %w", ep.ContainerID, ep.NetNSPath, err)
	}
	defer unix.Close(nsFd)
	// A namespace being removed leaves its mount point behind as an
	// ordinary file; setns on that fails with a bare EINVAL.
	var fs unix.Statfs_t
	if err := unix.Fstatfs(nsFd, &fs); err != nil || fs.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("container %s: %s is not a network namespace (the container is being removed): %w", ep.ContainerID, ep.NetNSPath, errNoNetNS)
	}
	mtu := ep.MTU
	if mtu <= 0 {
		mtu = n.mtu()
	}
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{
			Name: ep.HostIfName, MTU: mtu, MasterIndex: br.Attrs().Index, Flags: net.FlagUp, TxQLen: -1,
		},
		PeerName:         ep.IfName,
		PeerHardwareAddr: ep.MAC,
		PeerNamespace:    netlink.NsFd(nsFd),
	}
	h, err := netlink.NewHandleAt(netns.NsHandle(nsFd), unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("container %s: netlink in %s: %w", ep.ContainerID, ep.NetNSPath, err)
	}
	defer h.Close()
	if err := d.createVeth(h, nsFd, br, veth, ep); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			d.deleteLink(ep.HostIfName) // takes the container end, its addresses and routes with it
		}
	}()
	// Host end first: the bridge's TSO limit follows its ports'.
	raiseHostGSO(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: ep.HostIfName}})
	raiseHostGSO(br)
	if len(ep.Ports) > 0 {
		// A container reaching its own published port: with br_netfilter
		// the translated packet is bridged back out of the port it came
		// in by, which a bridge does only in hairpin mode.
		if err := netlink.LinkSetHairpin(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: ep.HostIfName}}, true); err != nil {
			return fmt.Errorf("container %s: hairpin mode on %s: %w", ep.ContainerID, ep.HostIfName, err)
		}
	}
	peer, err := h.LinkByName(ep.IfName)
	if err != nil {
		return fmt.Errorf("container %s: %s in its namespace: %w", ep.ContainerID, ep.IfName, err)
	}
	// Another container on the bridge can send router advertisements
	// too: the container must not take its IPv6 routes or addresses from
	// a neighbour (CVE-2020-13401). Set before the link comes up.
	if err := setSysctlIn(nsFd, "/proc/sys/net/ipv6/conf/"+ep.IfName+"/accept_ra", "0"); err != nil {
		return fmt.Errorf("container %s: accept_ra on %s: %w", ep.ContainerID, ep.IfName, err)
	}
	for _, a := range ep.Addresses {
		addr := &netlink.Addr{IPNet: ipNet(a)}
		if a.Addr().Is6() {
			addr.Flags = unix.IFA_F_NODAD // usable at once; IPAM guarantees uniqueness
		}
		if err := h.AddrReplace(peer, addr); err != nil {
			return fmt.Errorf("container %s: address %s on %s: %w", ep.ContainerID, a, ep.IfName, err)
		}
	}
	if err := h.LinkSetUp(peer); err != nil {
		return fmt.Errorf("container %s: bringing %s up: %w", ep.ContainerID, ep.IfName, err)
	}
	if err := pinGateways(h, br, peer, n, ep); err != nil {
		return err
	}
	for _, gw := range ep.Gateways {
		r := &netlink.Route{LinkIndex: peer.Attrs().Index, Gw: gw.AsSlice(), Family: addrFamily(gw)}
		if err := h.RouteReplace(r); err != nil {
			return fmt.Errorf("container %s: default route via %s: %w", ep.ContainerID, gw, err)
		}
	}
	return nil
}

// vethSettle bounds how long createVeth keeps meeting interfaces of the
// endpoint's names that go away or are replaced under it. Each round
// makes progress (a deletion, by berth or by the kernel) unless another
// process keeps recreating them, which no berth process does.
const vethSettle = 5 * time.Second

// createVeth makes the veth pair, or reuses or replaces one that exists.
// Names are freed at once when a device is deleted (both ends of a veth
// in one step), but a deletion can fall between any two of our requests:
// the previous pair's, by another berth process or by the kernel with a
// released namespace (a stop's, whose host end lingers until the
// namespace's cleanup runs). So LinkAdd is retried after each look at
// what is in the way, until it succeeds, the pair found is ours, or
// vethSettle passes.
func (d *Dataplane) createVeth(h *netlink.Handle, nsFd int, br netlink.Link, veth *netlink.Veth, ep Endpoint) error {
	deadline := time.Now().Add(vethSettle)
	wait := time.Millisecond
	for round := 0; ; round++ {
		err := netlink.LinkAdd(veth)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EEXIST) {
			d.deleteLink(ep.HostIfName) // LinkAdd may fail after creating it (enslaving)
			return fmt.Errorf("container %s: creating veth %s: %w", ep.ContainerID, ep.HostIfName, err)
		}
		reused, progress, err := d.settleVeth(h, nsFd, br, ep)
		if err != nil || reused {
			return err
		}
		if time.Now().After(deadline) {
			return errdefs.Conflict("container %s: interface %s (host) or %s (in the container's namespace) was made again each time it was deleted for %s; is another process using these names?", ep.ContainerID, ep.HostIfName, ep.IfName, vethSettle)
		}
		if !progress || round >= 3 {
			// Polled: what is in the way is another's to delete, or
			// somebody keeps making it again.
			time.Sleep(wait)
			wait = min(2*wait, 50*time.Millisecond)
		}
	}
}

// settleVeth looks at what made LinkAdd fail with EEXIST. The pair of an
// earlier attach of this endpoint whose namespace lives on (a restart
// after ReleaseEndpoint, a crashed monitor) is kept (reused), as deleting
// it costs RCU grace periods. Any other veth of the host end's name is a
// leftover and deleted; a link of that name that is no veth (or has it
// as an alternative name) is not berth's, and a conflict. An interface
// of the container's name with no host end of ours is the container's
// own (a stray of an earlier run, or made by the container with
// NET_ADMIN in its kept namespace: in Docker a restart gets a new
// namespace, so it would be gone) and deleted in that namespace, unless
// its other end is in the host's namespace: that one is not the
// container's, and a conflict. progress tells that something was deleted
// or had gone meanwhile, so LinkAdd can be retried at once.
func (d *Dataplane) settleVeth(h *netlink.Handle, nsFd int, br netlink.Link, ep Endpoint) (reused, progress bool, err error) {
	host, err := netlink.LinkByName(ep.HostIfName)
	if err != nil && !isLinkNotFound(err) {
		return false, false, fmt.Errorf("container %s: interface %s: %w", ep.ContainerID, ep.HostIfName, err)
	}
	peer, perr := h.LinkByName(ep.IfName)
	if perr != nil && !isLinkNotFound(perr) {
		return false, false, fmt.Errorf("container %s: %s in its namespace: %w", ep.ContainerID, ep.IfName, perr)
	}
	switch {
	case host != nil && peer != nil && ourPair(h, nsFd, br, host, peer, ep):
		if host.Attrs().Flags&net.FlagUp == 0 {
			if err := netlink.LinkSetUp(host); err != nil {
				return false, false, fmt.Errorf("container %s: bringing %s up: %w", ep.ContainerID, ep.HostIfName, err)
			}
		}
		return true, false, nil
	case host != nil && (host.Type() != "veth" || host.Attrs().Name != ep.HostIfName):
		// Not a leftover of berth's (its host ends are veths; a name
		// found that differs is another link's alternative name).
		return false, false, errdefs.Conflict("container %s: interface %s exists and is not a veth of berth's (%s %s)", ep.ContainerID, ep.HostIfName, host.Type(), host.Attrs().Name)
	case host != nil:
		// Its peer goes with it: in a namespace gone or going, or the
		// stray eth0 of the case below.
		return false, true, d.deleteLink(ep.HostIfName)
	case peer != nil:
		if other, ok := hostSidePeer(h, peer); ok {
			if other == "" || other == ep.HostIfName {
				return false, true, nil // deleted or made meanwhile: look again
			}
			return false, false, errdefs.Conflict("container %s: interface %s exists in the container's namespace, paired with the host's interface %s", ep.ContainerID, ep.IfName, other)
		}
		if err := h.LinkDel(peer); err != nil && !isLinkNotFound(err) {
			return false, false, fmt.Errorf("container %s: deleting the stray %s (%s) in its namespace: %w", ep.ContainerID, ep.IfName, peer.Type(), err)
		}
		return false, true, nil
	}
	return false, true, nil // both gone since LinkAdd
}

// ourPair reports whether host and peer are the two ends of one veth,
// host on the bridge and peer (with ep's MAC) in the namespace nsFd.
// Indexes are per namespace and a container with NET_ADMIN chooses its
// interfaces' (RTM_NEWLINK takes one): the namespace each end names for
// its peer (IFLA_LINK_NETNSID) is checked too, so that an interface of
// the container's making can never pass for the host end's peer.
func ourPair(h *netlink.Handle, nsFd int, br, host, peer netlink.Link, ep Endpoint) bool {
	ha, pa := host.Attrs(), peer.Attrs()
	if host.Type() != "veth" || peer.Type() != "veth" || pa.Name != ep.IfName || ha.MasterIndex != br.Attrs().Index ||
		ha.ParentIndex != pa.Index || pa.ParentIndex != ha.Index ||
		len(ep.MAC) != 0 && pa.HardwareAddr.String() != ep.MAC.String() {
		return false
	}
	// The ids exist: listing a link with its peer elsewhere assigns one.
	theirs, err := netlink.GetNetNsIdByFd(nsFd)
	if err != nil || theirs < 0 || ha.NetNsID != theirs {
		return false
	}
	ours, err := hostNetNsID(h)
	return err == nil && ours >= 0 && pa.NetNsID == ours
}

// hostNetNsID is the id of the host's namespace (the process's) in the
// namespace of h.
func hostNetNsID(h *netlink.Handle) (int, error) {
	fd, err := unix.Open("/proc/self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(fd)
	return h.GetNetNsIdByFd(fd)
}

// hostSidePeer reports whether link (in the namespace of h) is a veth
// whose other end is in the host's namespace, and that end's name.
func hostSidePeer(h *netlink.Handle, link netlink.Link) (string, bool) {
	a := link.Attrs()
	if link.Type() != "veth" || a.NetNsID < 0 {
		return "", false // no peer, or one in its own namespace
	}
	ours, err := hostNetNsID(h)
	if err != nil || ours < 0 || a.NetNsID != ours {
		return "", false
	}
	other, err := netlink.LinkByIndex(a.ParentIndex)
	if err != nil {
		return "", true // gone meanwhile
	}
	return other.Attrs().Name, true
}

// deleteLink deletes a host interface (and a veth's peer with it); a
// missing one is not an error.
func (d *Dataplane) deleteLink(name string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		if isLinkNotFound(err) {
			return nil
		}
		return fmt.Errorf("interface %s: %w", name, err)
	}
	if err := netlink.LinkDel(link); err != nil && !isLinkNotFound(err) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("deleting interface %s: %w", name, err)
	}
	return nil
}

func isLinkNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func netipPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones), true
}

// ensureForwarding turns on IP forwarding (and IPv6 forwarding for
// networks with IPv6 subnets), as Docker does.
func ensureForwarding(v6 bool) error {
	if err := writeSysctl("/proc/sys/net/ipv4/ip_forward", "1"); err != nil {
		return err
	}
	if v6 {
		return writeSysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1")
	}
	return nil
}

// writeSysctl writes a value unless it is already there (a write of the
// same value to forwarding still resets interfaces' settings).
func writeSysctl(path, val string) error {
	b, err := os.ReadFile(path)
	if err == nil && len(b) > 0 && string(b[:len(b)-1]) == val {
		return nil
	}
	if err := os.WriteFile(path, []byte(val), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", path, val, err)
	}
	return nil
}

// onlyGateways: every address on the link is one of the network's
// gateways (IPv6 link-local addresses aside).
func onlyGateways(have []netlink.Addr, n Network) bool {
	for _, a := range have {
		p, ok := netipPrefix(a.IPNet)
		if !ok {
			return false
		}
		if p.Addr().IsLinkLocalUnicast() {
			continue
		}
		found := false
		for i, s := range n.Subnets {
			found = found || p == netip.PrefixFrom(n.Gateways[i], s.Bits())
		}
		if !found {
			return false
		}
	}
	return true
}

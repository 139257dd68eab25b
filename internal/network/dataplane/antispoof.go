package dataplane

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Anti-spoofing on the bridges' ports: a container has CAP_NET_RAW and
// could otherwise forge ARP or NDP claiming a neighbour's address (the
// host's entry for that address, and the neighbours', would then send the
// victim's traffic, published ports included, to the attacker), forge
// another's MAC (the bridge would learn it on the attacker's port), or
// send as another container or as the gateway.
//
// It lives in a second table of the same name, family bridge (the inet
// table never sees bridged frames, nor ARP):
//
//	table bridge <table> {
//		map ports      ifname : verdict           port -> jump net-<bridge>
//		set port-mac   ifname . ether_addr        the port's MAC
//		set port-ip4   ifname . ipv4_addr         its addresses
//		set port-ip6   ifname . ipv6_addr         its addresses and EUI-64 link-local address
//		map port-digest ifname : ipv6_addr        digest of the port's other elements (portDigest)
//		chain prerouting (filter, -200): iifname vmap @ports
//		chain net-<bridge>: jump port; sources in the network's subnets must be the port's
//		chain port, port-arp, port-ndp: the same checks for every port
//	}
//
// The base chain dispatches by port: a kernel without NFT_BRIDGE_META (as
// here) has no "meta ibrname" to dispatch by bridge.
//
// An endpoint is five kinds of elements keyed by its port (the host end of
// its veth, named after the container and network), added before its veth
// exists, in one transaction with its DNAT elements, and deleted with them
// (or left by a release that has nothing else to delete: portDigest).
// Frames from a port are dropped when their source MAC, an ARP sender's
// MAC or address, an NDP message's claimed address (a solicitation's
// source, an advertisement's target) or link-layer option is not the
// port's, or a duplicate address detection probe for an address not the
// port's; router advertisements and redirects from containers are
// dropped (the host is their router); IP packets whose source is in the
// network's subnets or link-local but not the port's are dropped. Other
// sources pass: a container with CAP_NET_ADMIN may route for others (a
// VPN gateway) and forward their packets with their own addresses, as
// with Docker; what it cannot do is take an address of this network that
// is not its own, so no neighbour cache, conntrack entry or address-based
// trust between containers can be misled. Ports that are no endpoint's
// are not judged (veths of older berths, until Reconcile).
//
// The host's neighbour entries for container addresses are not made
// permanent: nothing forged reaches them, and a permanent entry makes
// the host send before a new veth's queue is active (see pinGateways).

// Names inside table bridge <table>.
const (
	mapPorts   = "ports"    // port -> jump net-<bridge>
	setPortMAC = "port-mac" // port . MAC
	setPortIP4 = "port-ip4" // port . IPv4 address
	setPortIP6 = "port-ip6" // port . IPv6 address
	// mapPortDigest maps a port to a digest of its other elements
	// (portDigest): what tells AddEndpoint that a port name's guards
	// left in place by a release differ from the new endpoint's.
	mapPortDigest = "port-digest"

	chainPort     = "port"
	chainPortARP  = "port-arp"
	chainPortNDP  = "port-ndp"
	guardPriority = -200 // the bridge family's "filter"
)

func netChain(bridge string) string { return "net-" + bridge }

// guardStaticChain says the bridge table's static part is there. Its
// version is the inet table's marker's (version.go): both tables' static
// parts are written in one transaction and bumped together.
const guardStaticChain = chainPort

// guardSets are the bridge table's sets and maps.
func guardSets() []setSpec {
	cat := nftables.MustConcatSetType
	return []setSpec{
		{name: mapPorts, key: nftables.TypeIFName, data: nftables.TypeVerdict, isMap: true, typeText: "ifname : verdict"},
		{name: setPortMAC, key: cat(nftables.TypeIFName, nftables.TypeEtherAddr), typeText: "ifname . ether_addr"},
		{name: setPortIP4, key: cat(nftables.TypeIFName, nftables.TypeIPAddr), typeText: "ifname . ipv4_addr"},
		{name: setPortIP6, key: cat(nftables.TypeIFName, nftables.TypeIP6Addr), typeText: "ifname . ipv6_addr"},
		// 128 bits typed as an IPv6 address only for nft's listing.
		{name: mapPortDigest, key: nftables.TypeIFName, data: nftables.TypeIP6Addr, isMap: true, typeText: "ifname : ipv6_addr"},
	}
}

// guardSetNames are the sets keyed by port.
var guardSetNames = [...]string{mapPorts, setPortMAC, setPortIP4, setPortIP6, mapPortDigest}

// etherType matches the frame's EtherType (nft's dependency for arp and
// icmpv6 in the bridge family).
func (r *rule) etherType(name string, t uint16) *rule {
	return r.add("ether type "+name,
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseLLHeader, Offset: 12, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binary.BigEndian.AppendUint16(nil, t)})
}

// metaProtocol matches skb->protocol (nft's dependency for ip and ip6
// in the bridge family).
func (r *rule) metaProtocol(v6 bool) *rule {
	t := uint16(unix.ETH_P_IP)
	if v6 {
		t = unix.ETH_P_IPV6
	}
	return r.add("",
		&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binary.BigEndian.AppendUint16(nil, t)})
}

// srcPrefix matches an IPv4 or IPv6 source address against a prefix.
func (r *rule) srcPrefix(p netip.Prefix) *rule {
	v6 := p.Addr().Is6()
	off, word := uint32(12), "ip saddr"
	if v6 {
		off, word = 8, "ip6 saddr"
	}
	n := uint32(p.Addr().BitLen() / 8)
	mask := make([]byte, n)
	for i := 0; i < p.Bits(); i++ {
		mask[i/8] |= 0x80 >> (i % 8)
	}
	return r.metaProtocol(v6).add(fmt.Sprintf("%s %s", word, p.Masked()),
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: n, Mask: mask, Xor: make([]byte, n)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: p.Masked().Addr().AsSlice()})
}

// field is a payload field: its base, offset, length and nft's name for it.
type field struct {
	base     expr.PayloadBase
	off, len uint32
	text     string
}

var (
	fEtherSrc  = field{expr.PayloadBaseLLHeader, 6, 6, "ether saddr"}
	fIPSrc     = field{expr.PayloadBaseNetworkHeader, 12, 4, "ip saddr"}
	fIP6Src    = field{expr.PayloadBaseNetworkHeader, 8, 16, "ip6 saddr"}
	fARPSHA    = field{expr.PayloadBaseNetworkHeader, 8, 6, "arp saddr ether"}
	fARPSPA    = field{expr.PayloadBaseNetworkHeader, 14, 4, "arp saddr ip"}
	fNDTarget  = field{expr.PayloadBaseTransportHeader, 8, 16, "@th,64,128"} // NS/NA target
	fNSOptMAC  = field{expr.PayloadBaseTransportHeader, 26, 6, "@th,208,48"} // first option's address (NS/NA)
	fRSOptMAC  = field{expr.PayloadBaseTransportHeader, 10, 6, "@th,80,48"}  // first option's address (RS)
	fNSOptHead = field{expr.PayloadBaseTransportHeader, 24, 2, "@th,192,16"} // first option's type and length
	fRSOptHead = field{expr.PayloadBaseTransportHeader, 8, 2, "@th,64,16"}
)

// notPorts drops what the port does not own: iifname . field != @set.
func (r *rule) notPorts(f field, set string) *rule {
	return r.add(fmt.Sprintf("iifname . %s != @%s", f.text, set),
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg1},
		&expr.Payload{DestRegister: reg32(unix.IFNAMSIZ), Base: f.base, Offset: f.off, Len: f.len},
		&expr.Lookup{SourceRegister: reg1, SetName: set, Invert: true})
}

// cmpField compares a field with a value.
func (r *rule) cmpField(f field, op expr.CmpOp, val []byte, valText string) *rule {
	neg := ""
	if op == expr.CmpOpNeq {
		neg = "!= "
	}
	return r.add(fmt.Sprintf("%s %s%s", f.text, neg, valText),
		&expr.Payload{DestRegister: reg1, Base: f.base, Offset: f.off, Len: f.len},
		&expr.Cmp{Op: op, Register: reg1, Data: val})
}

// arp is an ARP rule's dependency.
func arpRule() *rule {
	return newRule().add("",
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseLLHeader, Offset: 12, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binary.BigEndian.AppendUint16(nil, unix.ETH_P_ARP)})
}

// icmpv6Type starts an NDP rule: nft's dependencies, then the type.
func icmpv6Type(name string, t byte) *rule {
	r := newRule().add("",
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseLLHeader, Offset: 12, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: binary.BigEndian.AppendUint16(nil, unix.ETH_P_IPV6)},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{unix.IPPROTO_ICMPV6}})
	return r.add("icmpv6 type "+name,
		&expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{t}})
}

const (
	ndRouterSolicit   = 133
	ndRouterAdvert    = 134
	ndNeighborSolicit = 135
	ndNeighborAdvert  = 136
	ndRedirect        = 137
)

// guardChains are the bridge table's chains that do not depend on any
// network.
func guardChains() []chainSpec {
	drop := expr.VerdictDrop
	unspec6 := make([]byte, 16)
	return []chainSpec{
		{
			name: "prerouting", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookPrerouting, prio: nftables.ChainPriorityRef(guardPriority),
			hookText: "type filter hook prerouting priority filter; policy accept;",
			rules:    []*rule{newRule().ifnameVmap(expr.MetaKeyIIFNAME, mapPorts)},
		},
		{
			name: chainPort,
			rules: []*rule{
				// Before the bridge learns the source MAC on this port.
				newRule().notPorts(fEtherSrc, setPortMAC).verdict(drop, ""),
				// A tag would hide an ARP or NDP message from the
				// checks below (nft reads the tag as the EtherType).
				newRule().etherType("8021q", unix.ETH_P_8021Q).verdict(drop, ""),
				newRule().etherType("8021ad", unix.ETH_P_8021AD).verdict(drop, ""),
				newRule().etherType("arp", unix.ETH_P_ARP).verdict(expr.VerdictJump, chainPortARP),
				newRule().srcPrefix(netip.MustParsePrefix("fe80::/10")).notPorts(fIP6Src, setPortIP6).verdict(drop, ""),
				newRule().add("meta l4proto ipv6-icmp",
					&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg1},
					&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{unix.IPPROTO_ICMPV6}}).
					verdict(expr.VerdictJump, chainPortNDP),
			},
		},
		{
			// Only Ethernet/IPv4 ARP is read by the checks' offsets;
			// receivers ignore any other kind on these links.
			name: chainPortARP,
			rules: []*rule{
				arpRule().cmpField(field{expr.PayloadBaseNetworkHeader, 0, 2, "arp htype"}, expr.CmpOpNeq, []byte{0, 1}, "1").verdict(drop, ""),
				arpRule().cmpField(field{expr.PayloadBaseNetworkHeader, 2, 2, "arp ptype"}, expr.CmpOpNeq, []byte{8, 0}, "ip").verdict(drop, ""),
				arpRule().cmpField(field{expr.PayloadBaseNetworkHeader, 4, 1, "arp hlen"}, expr.CmpOpNeq, []byte{6}, "6").verdict(drop, ""),
				arpRule().cmpField(field{expr.PayloadBaseNetworkHeader, 5, 1, "arp plen"}, expr.CmpOpNeq, []byte{4}, "4").verdict(drop, ""),
				arpRule().notPorts(fARPSHA, setPortMAC).verdict(drop, ""),
				// 0.0.0.0: a probe (address conflict detection), which
				// updates no neighbour entry.
				arpRule().cmpField(fARPSPA, expr.CmpOpNeq, make([]byte, 4), "0.0.0.0").notPorts(fARPSPA, setPortIP4).verdict(drop, ""),
			},
		},
		{
			// The address a message makes its receivers map to a MAC:
			// a solicitation's source (:: in duplicate address
			// detection, which maps nothing), an advertisement's
			// target; and that MAC, the first option's (Linux takes
			// the first of each kind; the port's own MAC is checked
			// already). RAs and redirects update neighbour entries too
			// (even with accept_ra=0) and no container is a router of
			// a berth network.
			name: chainPortNDP,
			rules: []*rule{
				icmpv6Type("nd-router-advert", ndRouterAdvert).verdict(drop, ""),
				icmpv6Type("nd-redirect", ndRedirect).verdict(drop, ""),
				icmpv6Type("nd-router-solicit", ndRouterSolicit).cmpField(fIP6Src, expr.CmpOpNeq, unspec6, "::").notPorts(fIP6Src, setPortIP6).verdict(drop, ""),
				icmpv6Type("nd-neighbor-solicit", ndNeighborSolicit).cmpField(fIP6Src, expr.CmpOpNeq, unspec6, "::").notPorts(fIP6Src, setPortIP6).verdict(drop, ""),
				icmpv6Type("nd-neighbor-advert", ndNeighborAdvert).notPorts(fNDTarget, setPortIP6).verdict(drop, ""),
				// Duplicate address detection is for one's own
				// addresses: another's would make the owner give its
				// tentative address up.
				icmpv6Type("nd-neighbor-solicit", ndNeighborSolicit).cmpField(fIP6Src, expr.CmpOpEq, unspec6, "::").notPorts(fNDTarget, setPortIP6).verdict(drop, ""),
				icmpv6Type("nd-router-solicit", ndRouterSolicit).cmpField(fRSOptHead, expr.CmpOpEq, []byte{1, 1}, "0x101").notPorts(fRSOptMAC, setPortMAC).verdict(drop, ""),
				icmpv6Type("nd-neighbor-solicit", ndNeighborSolicit).cmpField(fNSOptHead, expr.CmpOpEq, []byte{1, 1}, "0x101").notPorts(fNSOptMAC, setPortMAC).verdict(drop, ""),
				icmpv6Type("nd-neighbor-advert", ndNeighborAdvert).cmpField(fNSOptHead, expr.CmpOpEq, []byte{2, 1}, "0x201").notPorts(fNSOptMAC, setPortMAC).verdict(drop, ""),
			},
		},
	}
}

// guardNetworkChain is a network's chain in the bridge table: the common
// checks, then its subnets' addresses are the ports' own only.
func guardNetworkChain(n Network) chainSpec {
	c := chainSpec{name: netChain(n.Bridge), rules: []*rule{newRule().verdict(expr.VerdictJump, chainPort)}}
	for _, s := range n.Subnets {
		f, set := fIPSrc, setPortIP4
		if s.Addr().Is6() {
			f, set = fIP6Src, setPortIP6
		}
		c.rules = append(c.rules, newRule().srcPrefix(s).notPorts(f, set).verdict(expr.VerdictDrop, ""))
	}
	return c
}

// linkLocal is the EUI-64 link-local address the kernel gives an
// interface with this MAC.
func linkLocal(mac net.HardwareAddr) netip.Addr {
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	a[8], a[9], a[10], a[11], a[12] = mac[0]^2, mac[1], mac[2], 0xff, 0xfe
	a[13], a[14], a[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(a)
}

// guardElements are an endpoint's elements in the bridge table.
func guardElements(n Network, ep Endpoint) ([]element, error) {
	if len(ep.MAC) != 6 {
		return nil, fmt.Errorf("MAC address %q is not a 6-byte Ethernet address", ep.MAC)
	}
	tag := endpointTag(ep.ContainerID, ep.NetworkID)
	port := ifnameKey(ep.HostIfName)
	q := fmt.Sprintf("%q", ep.HostIfName)
	v := &expr.Verdict{Kind: expr.VerdictJump, Chain: netChain(n.Bridge)}
	els := []element{
		{set: mapPorts, key: port, verdict: v, comment: tag, text: fmt.Sprintf("%s comment %q : jump %s", q, tag, v.Chain)},
		{set: setPortMAC, key: append(append(port[:len(port):len(port)], ep.MAC...), 0, 0), comment: tag,
			text: fmt.Sprintf("%s . %s comment %q", q, ep.MAC, tag)},
	}
	addrs := []netip.Addr{linkLocal(ep.MAC)}
	for _, a := range ep.Addresses {
		addrs = append(addrs, a.Addr())
	}
	for _, a := range addrs {
		set := setPortIP4
		if a.Is6() {
			set = setPortIP6
		}
		els = append(els, element{set: set, key: append(port[:len(port):len(port)], a.AsSlice()...), comment: tag,
			text: fmt.Sprintf("%s . %s comment %q", q, a, tag)})
	}
	dg := portDigest(digestTag(tag, ep.Run), els)
	els = append(els, element{set: mapPortDigest, key: port, val: dg, comment: tag,
		text: fmt.Sprintf("%s comment %q : %s", q, tag, netip.AddrFrom16([16]byte(dg)))})
	return els, nil
}

// portDigest is a digest of a port's guard elements (sets, keys, the
// network chain). A release leaves a port's elements in place when it has
// no other change to make (deleting anything waits for an RCU grace
// period, ~10 ms): the name matches no interface once the veth is gone.
// A port name used again (the same container and network, started
// again; or two IDs whose names collide) must not inherit what they
// allowed: the digest map's key is the port alone, so adding the new
// endpoint's digest clashes (EEXIST) unless the elements there are
// exactly its own, and AddEndpoint then replaces the port's elements
// (replaceStale). Invariant: a port's elements in the kernel are always
// among those its digest element stands for (added, replaced and deleted
// together). 128 bits of SHA-256: nobody can pick another MAC or address
// that gives an old digest. The endpoint's tag (container and network)
// is in it too: the digest then also says whose the elements are, which
// ReleaseGuards needs to delete a removed container's elements and never
// those of another endpoint whose port name and addresses are the same;
// and so is the endpoint's run (digestTag), for a stopped container's
// elements, never those of its next run.
func portDigest(tag string, els []element) []byte {
	lines := make([]string, 0, len(els)+1)
	lines = append(lines, "tag\x00"+tag)
	for _, e := range els {
		lines = append(lines, e.set+"\x00"+string(e.key)+"\x00"+elementValue(e.set, e.val, e.verdict))
	}
	sort.Strings(lines)
	h := sha256.New()
	for _, l := range lines {
		fmt.Fprintf(h, "%d:%s", len(l), l)
	}
	return h.Sum(nil)[:16]
}

// digestTag is the tag portDigest covers: the endpoint's, and its run
// when it has one (an older berth's endpoints have none, and keep their
// digest). The elements' comments stay the tag alone.
func digestTag(tag, run string) string {
	if run == "" {
		return tag
	}
	return tag + "/" + run
}

// ensureGuardStatic (re)writes the bridge table, its sets and its static
// chains, as ensureStatic does for the inet table.
func (b *batch) ensureGuardStatic() error {
	if err := b.addGuardSets(); err != nil {
		return err
	}
	b.addChainsIn(b.bridge, guardChains())
	return nil
}

// addGuardSets adds the bridge table and its sets, each a no-op when
// there.
func (b *batch) addGuardSets() error {
	b.c.AddTable(b.bridge)
	for _, s := range guardSets() {
		if err := b.c.AddSet(b.sets[s.name], nil); err != nil {
			return err
		}
	}
	return nil
}

// guardChainNames are the names of the chains in the bridge table.
func (d *Dataplane) guardChainNames(b *batch) (map[string]bool, error) {
	return d.chainNamesOf(b, nftables.TableFamilyBridge)
}

// portGuards lists the kernel's elements keyed by port (all ports when
// port is ""), by set; none without the bridge table.
func (b *batch) portGuards(port string) ([]element, error) {
	// The library's listings lose the errno: a missing table is looked
	// for first.
	if _, err := b.c.ListTableOfFamily(b.bridge.Name, nftables.TableFamilyBridge); err != nil {
		if isNotExist(err) {
			return nil, nil // no table (an older berth's): nothing to remove
		}
		return nil, err
	}
	var out []element
	key := ifnameKey(port)
	for _, s := range guardSetNames {
		got, err := b.c.GetSetElements(b.sets[s])
		if err != nil {
			return nil, err
		}
		for _, g := range got {
			if port == "" || len(g.Key) >= len(key) && string(g.Key[:len(key)]) == string(key) {
				e := element{set: s, key: g.Key, val: g.Val}
				if s == mapPorts {
					e.val = nil
					e.verdict = &expr.Verdict{Kind: expr.VerdictJump, Chain: verdictChain(g.Val)}
				}
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// guardsOfBridge are the elements of the ports that jump to a network's
// chain: they must go before it.
func (b *batch) guardsOfBridge(bridge string) ([]element, error) {
	all, err := b.portGuards("")
	if err != nil {
		return nil, err
	}
	ports := map[string]bool{}
	for _, e := range all {
		if e.set == mapPorts && e.verdict != nil && e.verdict.Chain == netChain(bridge) {
			ports[string(e.key)] = true
		}
	}
	var out []element
	for _, e := range all {
		if len(e.key) >= unix.IFNAMSIZ && ports[string(e.key[:unix.IFNAMSIZ])] {
			out = append(out, e)
		}
	}
	return out, nil
}

// renderGuards writes the bridge table as nft lists it.
func renderGuards(table string, nets []Network, eps []guardEndpoint) (string, error) {
	chains := guardChains()
	for _, n := range nets {
		chains = append(chains, guardNetworkChain(n))
	}
	var els []element
	for _, g := range eps {
		e, err := guardElements(g.n, g.ep)
		if err != nil {
			return "", fmt.Errorf("endpoint %s: %w", g.ep.ContainerID, err)
		}
		els = append(els, e...)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "table bridge %s {\n", table)
	for _, s := range guardSets() {
		kind := "set"
		if s.isMap {
			kind = "map"
		}
		fmt.Fprintf(&sb, "\t%s %s {\n\t\ttype %s\n", kind, s.name, s.typeText)
		var lines []string
		for _, e := range els {
			if e.set == s.name {
				lines = append(lines, e.text)
			}
		}
		sort.Strings(lines)
		if len(lines) > 0 {
			fmt.Fprintf(&sb, "\t\telements = {\n\t\t\t%s\n\t\t}\n", strings.Join(lines, ",\n\t\t\t"))
		}
		sb.WriteString("\t}\n")
	}
	writeChains(&sb, chains)
	sb.WriteString("}\n")
	return sb.String(), nil
}

type guardEndpoint struct {
	n  Network
	ep Endpoint
}

// removeGuardNetwork queues the deletion of a network's chain in the
// bridge table and of the elements of the ports that jump to it. It says
// whether the table exists.
func (b *batch) removeGuardNetwork(bridge string) (bool, error) {
	if _, err := b.c.ListTableOfFamily(b.bridge.Name, nftables.TableFamilyBridge); err != nil {
		if isNotExist(err) {
			return false, nil
		}
		return false, err
	}
	guards, err := b.guardsOfBridge(bridge)
	if err != nil {
		return false, err
	}
	if err := b.delElements(keysOnly(guards), false); err != nil {
		return false, err
	}
	b.delChainsIn(b.bridge, []chainSpec{{name: netChain(bridge)}})
	return true, nil
}

// removeEndpointElements deletes an endpoint's DNAT elements and its
// port's guards in one transaction, each added first so that a missing
// one does not fail it (as removeElements does). When one is another's
// (EEXIST: a host port taken over, or the port name used again), each
// kind goes on its own, only what is still the endpoint's: a guard
// element's key alone does not say whose it is, the port's digest does
// (deleteOwnGuards). When a table, a set or the network's chain is
// missing, or the caller does not know the MAC, the guards are those the
// kernel holds for the port.
func (d *Dataplane) removeEndpointElements(n Network, ep Endpoint, els []element) error {
	guards, err := guardElements(n, ep)
	if err == nil {
		err = d.deleteAddedFirst(append(els[:len(els):len(els)], guards...))
		if isExist(err) {
			if err := d.removeElements(els, nil); err != nil {
				return err
			}
			return d.deleteOwnGuards(guards)
		}
		if err == nil || !isNotExist(err) {
			return err
		}
	}
	if err := d.removeElements(els, nil); err != nil {
		return err
	}
	return d.removeListedGuards(ep.HostIfName)
}

// removeListedGuards deletes what the kernel holds for a port (listing
// the sets: ~2 ms with 100 endpoints, so only when the keys are not
// known).
func (d *Dataplane) removeListedGuards(port string) error {
	var err error
	for range 3 {
		var b *batch
		if b, err = d.newBatch(); err != nil {
			return err
		}
		var guards []element
		if guards, err = b.portGuards(port); err != nil {
			return err
		}
		if err = d.removeElementsOnce(nil, keysOnly(guards)); err == nil || !isNotExist(err) {
			return err
		}
		// Deleted meanwhile by another removal of the endpoint: look again.
	}
	return err
}

// addGuards adds a port's guards (Reconcile, before it makes the veth
// again), replacing what a release left of another endpoint's.
func (d *Dataplane) addGuards(port string, guards []element) error {
	if len(guards) == 0 {
		return nil
	}
	err := d.addElements(guards)
	if isExist(err) {
		err = d.replaceStale(err, port, guards, nil, false)
	}
	return err
}

// addElements adds elements in one transaction.
func (d *Dataplane) addElements(els []element) error {
	b, err := d.newBatch()
	if err != nil {
		return err
	}
	if err := b.addElements(els); err != nil {
		return err
	}
	return b.flush()
}

// keysOnly are els without their verdicts: a deletion names the key.
func keysOnly(els []element) []element {
	out := make([]element, len(els))
	for i, e := range els {
		out[i] = element{set: e.set, key: e.key}
	}
	return out
}

// verdictChain is the chain of a verdict map element's value as the
// kernel lists it (the library hands over its netlink attributes).
func verdictChain(val []byte) string {
	ad, err := netlink.NewAttributeDecoder(val)
	if err != nil {
		return ""
	}
	for ad.Next() {
		if ad.Type() == unix.NFTA_VERDICT_CHAIN {
			return ad.String()
		}
	}
	return ""
}

// elementValue identifies an element's value: its data, or a port's
// network chain.
func elementValue(set string, val []byte, v *expr.Verdict) string {
	if set != mapPorts {
		return string(val)
	}
	if v != nil {
		return v.Chain
	}
	return verdictChain(val)
}

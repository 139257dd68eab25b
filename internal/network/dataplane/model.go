package dataplane

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The ruleset model. Every rule berth puts into its table is built here
// once, as a list of nftables expressions and, side by side, the text nft
// would print for it; the kernel gets the expressions, the golden files
// get the text, so the two cannot drift apart.
//
// Layout of table inet <name> (see ARCHITECTURE.md, "Dataplane"):
//
//   - static chains and maps, the same for every network: the base chains
//     dispatch through verdict maps keyed by bridge name, and published
//     ports are elements of four DNAT maps;
//   - per network, two regular chains named after its bridge and one
//     element in each dispatch map;
//   - per endpoint, nothing but DNAT map elements, each with a comment
//     naming the container and network.
//
// So no change ever needs to find a rule by handle: a network is chains
// plus elements, an endpoint is elements, and every change is one
// nftables transaction of idempotent adds and deletes.

// Names inside the table.
const (
	UserChain = "berth-user" // users' own accept/drop rules, never touched by berth

	setBridges = "bridges"
	mapFwdOut  = "fwd-out"  // oifname -> jump to-<bridge>
	mapFwdIn   = "fwd-in"   // iifname -> accept | drop
	mapFwdFrom = "fwd-from" // iifname of an internal network -> jump from-<bridge>
	mapNATOut  = "nat-out"  // oifname -> jump masq-to-<bridge>
	mapNATIn   = "nat-in"   // iifname -> jump masq-from-<bridge>
	mapDNAT4IP = "dnat4-ip" // ip daddr . proto . port -> addr . port
	mapDNAT4   = "dnat4"    // proto . port (every local address) -> addr . port
	mapDNAT6IP = "dnat6-ip"
	mapDNAT6   = "dnat6"

	chainForward = "berth-forward"
	// rulesetVersion is the version of the static parts of the table
	// and of the bridge table of the same name (antispoof.go, written in
	// the same transaction), which the table records as an empty chain
	// "ruleset-<N>" (version.go); bump it with either part.
	rulesetVersion = 4
	chainPorts     = "ports"
)

func toChain(bridge string) string       { return "to-" + bridge }
func masqToChain(bridge string) string   { return "masq-to-" + bridge }
func masqFromChain(bridge string) string { return "masq-from-" + bridge }
func fromChain(bridge string) string     { return "from-" + bridge }

// rule is one rule: its expressions and the text nft prints for it.
type rule struct {
	text  []string
	exprs []expr.Any
}

func (r *rule) add(text string, e ...expr.Any) *rule {
	if text != "" {
		r.text = append(r.text, text)
	}
	r.exprs = append(r.exprs, e...)
	return r
}

func (r *rule) String() string { return strings.Join(r.text, " ") }

// Registers as nft allocates them: reg 1 is the 16-byte NFT_REG_1, and
// concatenations continue in the 4-byte registers after it.
const (
	reg1 = unix.NFT_REG_1
)

// reg32 is the 4-byte register at byte offset off from reg 1.
func reg32(off int) uint32 { return uint32(unix.NFT_REG32_00 + off/4) }

func ifnameData(name string) []byte { return append([]byte(name), 0) }

// ifnameKey is an ifname as a set key: IFNAMSIZ bytes, zero padded.
func ifnameKey(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

func native32(v uint32) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, v)
	return b
}

func (r *rule) ifname(key expr.MetaKey, op expr.CmpOp, name string) *rule {
	word := "iifname"
	if key == expr.MetaKeyOIFNAME {
		word = "oifname"
	}
	neg := ""
	if op == expr.CmpOpNeq {
		neg = "!= "
	}
	return r.add(fmt.Sprintf("%s %s%q", word, neg, name),
		&expr.Meta{Key: key, Register: reg1},
		&expr.Cmp{Op: op, Register: reg1, Data: ifnameData(name)})
}

func (r *rule) iif(name string) *rule    { return r.ifname(expr.MetaKeyIIFNAME, expr.CmpOpEq, name) }
func (r *rule) iifNot(name string) *rule { return r.ifname(expr.MetaKeyIIFNAME, expr.CmpOpNeq, name) }
func (r *rule) oifNot(name string) *rule { return r.ifname(expr.MetaKeyOIFNAME, expr.CmpOpNeq, name) }

// ifnameIn matches iifname/oifname against a named set.
func (r *rule) ifnameIn(key expr.MetaKey, set string) *rule {
	word := "iifname"
	if key == expr.MetaKeyOIFNAME {
		word = "oifname"
	}
	return r.add(fmt.Sprintf("%s @%s", word, set),
		&expr.Meta{Key: key, Register: reg1},
		&expr.Lookup{SourceRegister: reg1, SetName: set})
}

// ifnameVmap dispatches on iifname/oifname through a verdict map.
func (r *rule) ifnameVmap(key expr.MetaKey, set string) *rule {
	word := "iifname"
	if key == expr.MetaKeyOIFNAME {
		word = "oifname"
	}
	return r.add(fmt.Sprintf("%s vmap @%s", word, set),
		&expr.Meta{Key: key, Register: reg1},
		&expr.Lookup{SourceRegister: reg1, DestRegister: unix.NFT_REG_VERDICT, IsDestRegSet: true, SetName: set})
}

func (r *rule) nfproto(v6 bool) *rule {
	p := byte(unix.NFPROTO_IPV4)
	if v6 {
		p = unix.NFPROTO_IPV6
	}
	return r.add("",
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{p}})
}

// addr matches the source or destination address against a prefix.
func (r *rule) addr(dst bool, p netip.Prefix) *rule {
	v6 := p.Addr().Is6()
	off, word := uint32(12), "ip saddr"
	if dst {
		off, word = 16, "ip daddr"
	}
	if v6 {
		off, word = 8, "ip6 saddr"
		if dst {
			off, word = 24, "ip6 daddr"
		}
	}
	n := uint32(p.Addr().BitLen() / 8)
	text := fmt.Sprintf("%s %s", word, p.Masked())
	if p.IsSingleIP() {
		text = fmt.Sprintf("%s %s", word, p.Addr())
	}
	r.nfproto(v6)
	r.add(text, &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: n})
	if !p.IsSingleIP() {
		mask := make([]byte, n)
		for i := 0; i < p.Bits(); i++ {
			mask[i/8] |= 0x80 >> (i % 8)
		}
		r.add("", &expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: n, Mask: mask, Xor: make([]byte, n)})
	}
	return r.add("", &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: p.Masked().Addr().AsSlice()})
}

func (r *rule) ctState(text string, bits uint32) *rule {
	return r.add("ct state "+text,
		&expr.Ct{Key: expr.CtKeySTATE, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: native32(bits), Xor: native32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: native32(0)})
}

// ctDNAT matches connections whose destination was translated: the
// published ports.
func (r *rule) ctDNAT() *rule {
	const ipsDstNAT = 1 << 5 // IPS_DST_NAT
	return r.add("ct status dnat",
		&expr.Ct{Key: expr.CtKeySTATUS, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: native32(ipsDstNAT), Xor: native32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: native32(0)})
}

func (r *rule) fibDaddrLocal() *rule {
	return r.add("fib daddr type local",
		&expr.Fib{Register: reg1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: native32(unix.RTN_LOCAL)})
}

func (r *rule) verdict(kind expr.VerdictKind, chain string) *rule {
	var text string
	switch kind {
	case expr.VerdictAccept:
		text = "accept"
	case expr.VerdictDrop:
		text = "drop"
	case expr.VerdictReturn:
		text = "return"
	case expr.VerdictJump:
		text = "jump " + chain
	case expr.VerdictGoto:
		text = "goto " + chain
	}
	return r.add(text, &expr.Verdict{Kind: kind, Chain: chain})
}

func (r *rule) masquerade() *rule { return r.add("masquerade", &expr.Masq{}) }

// dnatMap translates the destination through one of the DNAT maps. With
// byAddr the key starts with the packet's destination address.
func (r *rule) dnatMap(v6, byAddr bool, set string) *rule {
	fam, word, alen := uint32(unix.NFPROTO_IPV4), "ip", 4
	if v6 {
		fam, word, alen = unix.NFPROTO_IPV6, "ip6", 16
	}
	r.nfproto(v6)
	key, off := "", 0
	if byAddr {
		daddr := uint32(16)
		if v6 {
			daddr = 24
		}
		key = word + " daddr . "
		r.add("", &expr.Payload{DestRegister: reg1, Base: expr.PayloadBaseNetworkHeader, Offset: daddr, Len: uint32(alen)})
		off = alen
	}
	r.add("",
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg32(off)},
		&expr.Payload{DestRegister: reg32(off + 4), Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: set})
	proto := ""
	if !byAddr {
		proto = "meta nfproto " + map[bool]string{false: "ipv4", true: "ipv6"}[v6] + " "
	}
	return r.add(fmt.Sprintf("%sdnat %s to %smeta l4proto . th dport map @%s", proto, word, key, set),
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: fam, RegAddrMin: reg1, RegProtoMin: reg32(alen)})
}

func newRule() *rule { return &rule{} }

// chainSpec is a chain and its rules.
type chainSpec struct {
	name string
	// hook, for base chains.
	typ      nftables.ChainType
	hook     *nftables.ChainHook
	prio     *nftables.ChainPriority
	hookText string
	// keep: never flushed (the users' chain).
	keep  bool
	rules []*rule
}

// setSpec is a named set or map.
type setSpec struct {
	name     string
	key      nftables.SetDatatype
	data     nftables.SetDatatype
	isMap    bool
	typeText string
}

// element is one set or map element.
type element struct {
	set     string
	key     []byte
	val     []byte
	verdict *expr.Verdict
	comment string
	text    string
}

// staticSets are the table's sets and maps.
func staticSets() []setSpec {
	// Made here, not as package variables: every process that links the
	// dataplane (each container's monitor) would pay for them at init.
	cat := nftables.MustConcatSetType
	var (
		dnat4IPKey = cat(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
		dnat6IPKey = cat(nftables.TypeIP6Addr, nftables.TypeInetProto, nftables.TypeInetService)
		dnatKey    = cat(nftables.TypeInetProto, nftables.TypeInetService)
		dnat4Val   = cat(nftables.TypeIPAddr, nftables.TypeInetService)
		dnat6Val   = cat(nftables.TypeIP6Addr, nftables.TypeInetService)
	)
	vm := func(name string) setSpec {
		return setSpec{name: name, key: nftables.TypeIFName, data: nftables.TypeVerdict, isMap: true, typeText: "ifname : verdict"}
	}
	return []setSpec{
		{name: setBridges, key: nftables.TypeIFName, typeText: "ifname"},
		vm(mapFwdOut), vm(mapFwdIn), vm(mapFwdFrom), vm(mapNATOut), vm(mapNATIn),
		{name: mapDNAT4IP, key: dnat4IPKey, data: dnat4Val, isMap: true, typeText: "ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service"},
		{name: mapDNAT4, key: dnatKey, data: dnat4Val, isMap: true, typeText: "inet_proto . inet_service : ipv4_addr . inet_service"},
		{name: mapDNAT6IP, key: dnat6IPKey, data: dnat6Val, isMap: true, typeText: "ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service"},
		{name: mapDNAT6, key: dnatKey, data: dnat6Val, isMap: true, typeText: "inet_proto . inet_service : ipv6_addr . inet_service"},
	}
}

var loopback4 = netip.PrefixFrom(netip.AddrFrom4([4]byte{127, 0, 0, 0}), 8)

// staticChains are the chains that do not depend on any network.
func staticChains() []chainSpec {
	const (
		oif = expr.MetaKeyOIFNAME
		iif = expr.MetaKeyIIFNAME
	)
	return []chainSpec{
		{name: markerName(rulesetVersion)},
		{name: UserChain, keep: true},
		{
			// Docker 28's guard: route_localnet on a bridge (needed for
			// ports published on 127.0.0.1) would let its containers
			// reach the host's loopback services. Replies of those
			// connections arrive addressed to the gateway and become
			// 127.0.0.1 only at the nat hook, after this one.
			name: "guard", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookPrerouting, prio: nftables.ChainPriorityRaw,
			hookText: "type filter hook prerouting priority raw; policy accept;",
			rules: []*rule{
				newRule().ifnameIn(iif, setBridges).addr(true, loopback4).verdict(expr.VerdictDrop, ""),
			},
		},
		{
			// Packets from other hosts to 127/8 are never translated:
			// that is what keeps neighbours from reaching ports published
			// on 127.0.0.1 (CVE-2020-8558).
			name: "prerouting", typ: nftables.ChainTypeNAT, hook: nftables.ChainHookPrerouting, prio: nftables.ChainPriorityNATDest,
			hookText: "type nat hook prerouting priority dstnat; policy accept;",
			rules: []*rule{
				newRule().addr(true, loopback4).verdict(expr.VerdictReturn, ""),
				newRule().addr(true, netip.PrefixFrom(netip.IPv6Loopback(), 128)).verdict(expr.VerdictReturn, ""),
				newRule().fibDaddrLocal().verdict(expr.VerdictJump, chainPorts),
			},
		},
		{
			// ::1 cannot be translated to a container (IPv6 has no
			// route_localnet): left alone, a connection to [::1]:port
			// meets the reserving socket, is refused at once, and the
			// client falls back to 127.0.0.1.
			name: "output", typ: nftables.ChainTypeNAT, hook: nftables.ChainHookOutput, prio: nftables.ChainPriorityNATDest,
			hookText: "type nat hook output priority -100; policy accept;",
			rules: []*rule{
				newRule().addr(true, netip.PrefixFrom(netip.IPv6Loopback(), 128)).verdict(expr.VerdictReturn, ""),
				newRule().fibDaddrLocal().verdict(expr.VerdictJump, chainPorts),
			},
		},
		{
			name: chainPorts,
			rules: []*rule{
				newRule().dnatMap(false, true, mapDNAT4IP),
				newRule().dnatMap(false, false, mapDNAT4),
				newRule().dnatMap(true, true, mapDNAT6IP),
				newRule().dnatMap(true, false, mapDNAT6),
			},
		},
		{
			name: "postrouting", typ: nftables.ChainTypeNAT, hook: nftables.ChainHookPostrouting, prio: nftables.ChainPriorityNATSource,
			hookText: "type nat hook postrouting priority srcnat; policy accept;",
			rules: []*rule{
				newRule().ifnameVmap(oif, mapNATOut),
				newRule().ifnameVmap(iif, mapNATIn),
			},
		},
		{
			// policy accept: an accept here only ends this chain, other
			// tables still judge the packet; berth drops only what it owns.
			name: "forward", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookForward, prio: nftables.ChainPriorityFilter,
			hookText: "type filter hook forward priority filter; policy accept;",
			rules: []*rule{
				newRule().ifnameIn(oif, setBridges).verdict(expr.VerdictGoto, chainForward),
				newRule().ifnameIn(iif, setBridges).verdict(expr.VerdictGoto, chainForward),
			},
		},
		{
			name: chainForward,
			rules: []*rule{
				newRule().verdict(expr.VerdictJump, UserChain),
				newRule().ctState("established,related", expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED).verdict(expr.VerdictAccept, ""),
				// Before the destination's chain, which accepts
				// published ports: an internal network's container
				// must not reach other networks' published ports
				// through a host address (DNAT), as with Docker.
				newRule().ifnameVmap(iif, mapFwdFrom),
				newRule().ifnameVmap(oif, mapFwdOut),
				newRule().ifnameVmap(iif, mapFwdIn),
			},
		},
	}
}

// networkObjects are a network's chains and dispatch elements.
func networkObjects(n Network) ([]chainSpec, []element) {
	br := n.Bridge
	// to-<bridge>: new connections into the bridge from elsewhere.
	to := chainSpec{name: toChain(br)}
	if n.Internal {
		to.rules = append(to.rules, newRule().iifNot(br).verdict(expr.VerdictDrop, ""))
	}
	to.rules = append(to.rules, newRule().ctDNAT().verdict(expr.VerdictAccept, ""))
	icc := expr.VerdictAccept
	if !n.ICC {
		icc = expr.VerdictDrop
	}
	to.rules = append(to.rules,
		newRule().iif(br).verdict(icc, ""),
		// Other berth networks, other interfaces, other hosts routing
		// to a container address: only published ports get in.
		newRule().verdict(expr.VerdictDrop, ""))

	// masq-to-<bridge>: translated traffic into the bridge whose source
	// the container could not answer: 127/8 (from the host's loopback)
	// and the network's own subnets (hairpin: the container would answer
	// the client directly, bypassing the reverse translation, or itself).
	masqTo := chainSpec{name: masqToChain(br), rules: []*rule{
		newRule().addr(false, loopback4).masquerade(),
	}}
	for _, s := range n.Subnets {
		// By source address, not iifname: with br_netfilter a DNATed
		// packet that goes back into its own bridge is bridged, and
		// bridged packets have no input interface at postrouting.
		masqTo.rules = append(masqTo.rules, newRule().addr(false, s).ctDNAT().masquerade())
	}
	chains := []chainSpec{to, masqTo}

	fromVerdict := expr.VerdictAccept
	if n.Internal {
		fromVerdict = expr.VerdictDrop
	}
	els := []element{
		{set: setBridges, key: ifnameKey(br), text: fmt.Sprintf("%q", br)},
		verdictElement(mapFwdOut, br, expr.VerdictJump, toChain(br)),
		verdictElement(mapFwdIn, br, fromVerdict, ""),
		verdictElement(mapNATOut, br, expr.VerdictJump, masqToChain(br)),
	}
	if n.Masquerade && !n.Internal {
		chains = append(chains, chainSpec{name: masqFromChain(br), rules: []*rule{
			newRule().oifNot(br).masquerade(),
		}})
		els = append(els, verdictElement(mapNATIn, br, expr.VerdictJump, masqFromChain(br)))
	}
	if n.Internal {
		// from-<bridge>: an internal network's traffic stays on its
		// bridge, whatever a DNAT made of its destination.
		chains = append(chains, chainSpec{name: fromChain(br), rules: []*rule{
			newRule().oifNot(br).verdict(expr.VerdictDrop, ""),
		}})
		els = append(els, verdictElement(mapFwdFrom, br, expr.VerdictJump, fromChain(br)))
	}
	return chains, els
}

func verdictElement(set, ifname string, kind expr.VerdictKind, chain string) element {
	v := &expr.Verdict{Kind: kind, Chain: chain}
	return element{set: set, key: ifnameKey(ifname), verdict: v,
		text: fmt.Sprintf("%q : %s", ifname, newRule().verdict(kind, chain).String())}
}

// endpointTag names an endpoint in its elements' comments (at most 128
// bytes: 32 hex digits of each ID is plenty).
func endpointTag(containerID, networkID string) string {
	return short(containerID, 32) + "/" + short(networkID, 32)
}

func short(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// protoNumber is the IP protocol number of "tcp", "udp" or "sctp".
func protoNumber(name string) (byte, bool) {
	switch name {
	case "tcp":
		return unix.IPPROTO_TCP, true
	case "udp":
		return unix.IPPROTO_UDP, true
	case "sctp":
		return unix.IPPROTO_SCTP, true
	}
	return 0, false
}

// endpointElements are the DNAT map elements of an endpoint's published
// ports. A mapping whose family the endpoint has no address of is
// skipped, as Docker does.
func endpointElements(n Network, ep Endpoint) ([]element, error) {
	if n.Internal {
		return nil, nil // internal networks publish nothing
	}
	var addr4, addr6 netip.Addr
	for _, p := range ep.Addresses {
		if p.Addr().Is4() && !addr4.IsValid() {
			addr4 = p.Addr()
		} else if p.Addr().Is6() && !addr6.IsValid() {
			addr6 = p.Addr()
		}
	}
	tag := endpointTag(ep.ContainerID, ep.NetworkID)
	var els []element
	for _, pm := range ep.Ports {
		proto, ok := protoNumber(pm.Proto)
		if !ok {
			return nil, fmt.Errorf("port %d: unknown protocol %q (want tcp, udp or sctp)", pm.HostPort, pm.Proto)
		}
		if pm.HostPort == 0 || pm.ContainerPort == 0 {
			return nil, fmt.Errorf("port mapping %s %d:%d: ports must be set", pm.Proto, pm.HostPort, pm.ContainerPort)
		}
		hostIP := pm.HostIP
		if hostIP.IsLoopback() && hostIP.Is6() {
			return nil, fmt.Errorf("port %d: publishing on ::1 is not supported (IPv6 has no route_localnet): publish on 127.0.0.1 or on every address", pm.HostPort)
		}
		if !hostIP.IsValid() && n.HostBinding.IsValid() && !n.HostBinding.IsUnspecified() {
			// The caller should pass it in HostIP too, so that
			// ReservePorts reserves the port there only.
			hostIP = n.HostBinding
		}
		for _, v6 := range []bool{false, true} {
			caddr := addr4
			if v6 {
				caddr = addr6
			}
			if !caddr.IsValid() {
				continue
			}
			if hostIP.IsValid() && hostIP.Unmap().Is6() != v6 {
				continue
			}
			val := append(caddr.AsSlice(), portWord(pm.ContainerPort)...)
			valText := fmt.Sprintf("%s . %d", caddr, pm.ContainerPort)
			key := append([]byte{proto, 0, 0, 0}, portWord(pm.HostPort)...)
			keyText := fmt.Sprintf("%s . %d", pm.Proto, pm.HostPort)
			set := mapDNAT4
			if v6 {
				set = mapDNAT6
			}
			if hostIP.IsValid() && !hostIP.IsUnspecified() {
				h := hostIP.Unmap()
				key = append(h.AsSlice(), key...)
				keyText = h.String() + " . " + keyText
				set = mapDNAT4IP
				if v6 {
					set = mapDNAT6IP
				}
			}
			els = append(els, element{set: set, key: key, val: val, comment: tag,
				text: fmt.Sprintf("%s comment %q : %s", keyText, tag, valText)})
		}
	}
	return els, nil
}

// portWord is a port as nft stores it in a concatenation: big endian,
// padded to a register word.
func portWord(p uint16) []byte { return []byte{byte(p >> 8), byte(p), 0, 0} }

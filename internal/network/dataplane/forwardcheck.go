package dataplane

import (
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Another firewall's drop. A base chain at the forward hook whose policy
// is drop, in a table that is not berth's, drops berth's routed traffic
// (and, with br_netfilter, its bridged traffic) whatever berth's own
// chains say, unless berth has a sanctioned place to accept it: Docker's
// DOCKER-USER (dockeruser.go). berth never edits another's rule set, so
// where it has no such place it can only say so, as Docker warns at
// create when IP forwarding is off. The check is one listing of the
// kernel's chains (all families in one netlink dump). Only beside such a
// drop does it read rules: the chains reachable from the dropping one,
// for the user's own accepts of the bridge (ufw route allow in and out on
// it), so that the advice, once followed, stops the warning.

// ForwardBlocker is a base chain at the forward hook of another table
// whose policy drops what its rules do not accept.
type ForwardBlocker struct {
	Family string // ip, ip6 or inet, as nft names it
	Table  string
	Chain  string
	// Kind says whose it looks like, for the advice: "ufw", "docker"
	// (with DOCKER-USER, berth's integration off), "docker-no-user-chain"
	// (Docker's table without DOCKER-USER: Docker 20.10's ip6 filter),
	// "firewalld" or "" (unknown).
	Kind string
}

// Warning is the message for a container on bridge (or for the network
// of that bridge): what drops, the effect, and what the user can do.
func (b ForwardBlocker) Warning(bridge string) string {
	what, over := "IPv4 and IPv6", ""
	switch b.Family {
	case "ip":
		what, over = "IPv4", " over IPv4"
	case "ip6":
		what, over = "IPv6", " over IPv6"
	}
	var do string
	switch b.Kind {
	case "ufw":
		do = fmt.Sprintf("run `ufw route allow in on %s` and `ufw route allow out on %s`", bridge, bridge)
	case "docker":
		do = `turn berth's "docker-user-chain" back on (berth's daemon.json), so that berth accepts its own traffic in Docker's DOCKER-USER chain`
	case "docker-no-user-chain":
		do = fmt.Sprintf("add rules to that table that accept traffic in from and out to %s (this Docker makes no DOCKER-USER chain there; newer ones do)", bridge)
	case "firewalld":
		do = fmt.Sprintf("add %s to firewalld's trusted zone (`firewall-cmd --permanent --zone=trusted --add-interface=%s`)", bridge, bridge)
	default:
		do = fmt.Sprintf("add rules that accept traffic in from and out to %s (ufw: `ufw route allow in on %s` and `ufw route allow out on %s`; "+
			"firewalld: add %s to the trusted zone; beside Docker: keep berth's \"docker-user-chain\" on)", bridge, bridge, bridge, bridge)
	}
	return fmt.Sprintf("The host's firewall drops forwarded %s traffic (nftables table %s %s, chain %s, policy drop): "+
		"containers on bridge %s cannot reach other hosts%s, and other hosts cannot reach their published ports%s "+
		"(the host itself still can). berth does not change another firewall's rules; to let this traffic pass, %s.",
		what, b.Family, b.Table, b.Chain, bridge, over, over, do)
}

// forwardFamilies are the families whose forward hook routed traffic
// crosses, with nft's names.
var forwardFamilies = map[nftables.TableFamily]string{
	nftables.TableFamilyIPv4: "ip",
	nftables.TableFamilyIPv6: "ip6",
	nftables.TableFamilyINet: "inet",
}

// ForwardBlockers lists the base chains of other tables that drop the
// traffic berth forwards for bridge; with ipv6 false, those of family ip6
// are left out (a network without IPv6 has no IPv6 traffic to forward).
func (d *Dataplane) ForwardBlockers(bridge string, ipv6 bool) ([]ForwardBlocker, error) {
	c, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return nil, err
	}
	defer c.CloseLasting()
	chains, err := c.ListChains()
	if err != nil {
		return nil, err
	}
	var out []ForwardBlocker
	for _, b := range forwardBlockers(chains, d.opts.table, d.dockerUserOn, ipv6) {
		if !acceptsBridge(b, bridge) {
			out = append(out, b)
		}
	}
	return out, nil
}

// acceptsBridge reports whether the rules reachable from b's chain
// (through jumps and gotos) accept, by interface name alone, traffic in
// from bridge and out to it: rules of the shape iptables-nft writes for
// "-i B -j ACCEPT" and "-o B -j ACCEPT" (ufw route allow in/out on B, a
// user's rule in DOCKER-USER), or nft's "iifname B accept". Rules before
// them are not judged: a heuristic that only silences a warning, never
// changes a packet's fate. One dump of the table's rules.
func acceptsBridge(b ForwardBlocker, bridge string) bool {
	var fam nftables.TableFamily
	for f, name := range forwardFamilies {
		if name == b.Family {
			fam = f
		}
	}
	rules, err := tableRules(fam, b.Table)
	if err != nil {
		return false
	}
	in, out := false, false
	seen := map[string]bool{b.Chain: true}
	for queue := []string{b.Chain}; len(queue) > 0; queue = queue[1:] {
		for _, r := range rules[queue[0]] {
			for _, e := range r.exprs {
				if v, ok := e.(*expr.Verdict); ok && (v.Kind == expr.VerdictJump || v.Kind == expr.VerdictGoto) && !seen[v.Chain] {
					seen[v.Chain] = true
					queue = append(queue, v.Chain)
				}
			}
			if r.other {
				continue
			}
			dr, ok := parseDURule(r.exprs)
			switch {
			case !ok || !dr.accept:
			case dr.oif == "" && ifnameMatches(dr.iif, bridge):
				in = true
			case dr.iif == "" && ifnameMatches(dr.oif, bridge):
				out = true
			}
		}
	}
	return in && out
}

// fwRule is a rule as acceptsBridge reads it: the expressions it knows;
// other is set when the rule has any other (it then matches more than
// names).
type fwRule struct {
	exprs []expr.Any
	other bool
}

// tableRules lists the rules of a table by chain, in one netlink dump (the
// library's GetRules asks chain by chain).
func tableRules(fam nftables.TableFamily, table string) (map[string][]fwRule, error) {
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NFTA_RULE_TABLE, table)
	attrs, err := ae.Encode()
	if err != nil {
		return nil, err
	}
	msgs, err := conn.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETRULE),
			Flags: netlink.Request | netlink.Dump,
		},
		Data: append([]byte{byte(fam), unix.NFNETLINK_V0, 0, 0}, attrs...),
	})
	if err != nil {
		return nil, err
	}
	out := map[string][]fwRule{}
	for _, m := range msgs {
		if len(m.Data) < 4 {
			continue
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[4:])
		if err != nil {
			return nil, err
		}
		var chain string
		var r fwRule
		for ad.Next() {
			switch ad.Type() {
			case unix.NFTA_RULE_CHAIN:
				chain = ad.String()
			case unix.NFTA_RULE_EXPRESSIONS:
				ad.Nested(func(list *netlink.AttributeDecoder) error {
					for list.Next() {
						list.Nested(func(el *netlink.AttributeDecoder) error {
							e, ok := decodeExpr(byte(fam), el)
							if ok {
								r.exprs = append(r.exprs, e)
							} else {
								r.other = true
							}
							return nil
						})
					}
					return nil
				})
			}
		}
		if err := ad.Err(); err != nil {
			return nil, err
		}
		out[chain] = append(out[chain], r)
	}
	return out, nil
}

// decodeExpr reads one expression of the kinds an interface-name accept
// and a jump are made of; ok is false for any other.
func decodeExpr(fam byte, ad *netlink.AttributeDecoder) (expr.Any, bool) {
	var name string
	var data []byte
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_EXPR_NAME:
			name = ad.String()
		case unix.NFTA_EXPR_DATA:
			data = ad.Bytes()
		}
	}
	var e expr.Any
	switch name {
	case "meta":
		e = &expr.Meta{}
	case "cmp":
		e = &expr.Cmp{}
	case "counter":
		e = &expr.Counter{}
	case "immediate":
		imm := &expr.Immediate{}
		if expr.Unmarshal(fam, data, imm) != nil || imm.Register != unix.NFT_REG_VERDICT || len(imm.Data) != 0 {
			return nil, false
		}
		e = &expr.Verdict{}
	default:
		return nil, false
	}
	if expr.Unmarshal(fam, data, e) != nil {
		return nil, false
	}
	return e, true
}

// ifnameMatches: an iptables interface name (a trailing "+" a wildcard)
// names the interface.
func ifnameMatches(pattern, name string) bool {
	if i := strings.IndexByte(pattern, 0); i >= 0 {
		return pattern[:i] == name // nft pads the name to IFNAMSIZ
	}
	if p, ok := strings.CutSuffix(pattern, "+"); ok {
		return strings.HasPrefix(name, p)
	}
	return pattern == name
}

// forwardBlockers judges a listing of the kernel's chains; dockerUser is
// asked only beside a drop (it reads a file).
func forwardBlockers(chains []*nftables.Chain, own string, dockerUser func() bool, ipv6 bool) []ForwardBlocker {
	type tkey struct {
		fam  nftables.TableFamily
		name string
	}
	has := map[tkey][]string{} // chain names of each table
	for _, ch := range chains {
		if ch.Table != nil {
			k := tkey{ch.Table.Family, ch.Table.Name}
			has[k] = append(has[k], ch.Name)
		}
	}
	var out []ForwardBlocker
	for _, ch := range chains {
		if ch.Table == nil {
			continue
		}
		fam, ok := forwardFamilies[ch.Table.Family]
		if !ok || ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookForward ||
			ch.Policy == nil || *ch.Policy != nftables.ChainPolicyDrop {
			continue
		}
		if fam == "inet" && ch.Table.Name == own || fam == "ip6" && !ipv6 {
			continue
		}
		names := has[tkey{ch.Table.Family, ch.Table.Name}]
		b := ForwardBlocker{Family: fam, Table: ch.Table.Name, Chain: ch.Name}
		docker := slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "DOCKER") })
		switch {
		case fam != "inet" && ch.Table.Name == dockerFilterTable && slices.Contains(names, dockerUserChain):
			if dockerUser() {
				continue // berth's rules in DOCKER-USER let its traffic pass
			}
			b.Kind = "docker"
		case slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "ufw") }):
			b.Kind = "ufw"
		case docker && ch.Table.Name == dockerFilterTable:
			b.Kind = "docker-no-user-chain"
		case ch.Table.Name == "firewalld":
			b.Kind = "firewalld"
		}
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b ForwardBlocker) int {
		return strings.Compare(a.Family+" "+a.Table+" "+a.Chain, b.Family+" "+b.Table+" "+b.Chain)
	})
	return out
}

package dataplane

import (
	"fmt"
	"slices"
	"strings"

	"github.com/google/nftables"
)

// Another firewall's drop. A base chain at the forward hook whose policy
// is drop, in a table that is not berth's, drops berth's routed traffic
// (and, with br_netfilter, its bridged traffic) whatever berth's own
// chains say, unless berth has a sanctioned place to accept it: Docker's
// DOCKER-USER (dockeruser.go). berth never edits another's rule set, so
// where it has no such place it can only say so, as Docker warns at
// create when IP forwarding is off. The check is one listing of the
// kernel's chains (all families in one netlink dump); it reads no rule,
// so a user's own accept for berth's bridge (ufw route allow) is not seen.

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
	what := "IPv4 and IPv6"
	switch b.Family {
	case "ip":
		what = "IPv4"
	case "ip6":
		what = "IPv6"
	}
	var do string
	switch b.Kind {
	case "ufw":
		do = fmt.Sprintf("with ufw, run `ufw route allow in on %s` and `ufw route allow out on %s`", bridge, bridge)
	case "docker":
		do = `keep berth's "docker-user-chain" on (berth's daemon.json) so that berth accepts its own traffic in Docker's DOCKER-USER chain`
	case "docker-no-user-chain":
		do = fmt.Sprintf("this Docker has no DOCKER-USER chain in table %s %s (a newer Docker has one); add a rule of your own that accepts traffic in and out of %s", b.Family, b.Table, bridge)
	case "firewalld":
		do = fmt.Sprintf("with firewalld, add %s to the trusted zone (`firewall-cmd --permanent --zone=trusted --add-interface=%s`)", bridge, bridge)
	default:
		do = fmt.Sprintf("with ufw, `ufw route allow in on %s` and `ufw route allow out on %s`; with firewalld, add %s to the trusted zone; beside Docker, keep berth's \"docker-user-chain\" on", bridge, bridge, bridge)
	}
	return fmt.Sprintf("The host's firewall drops forwarded %s traffic (nftables table %s %s, chain %s, policy drop): "+
		"containers on bridge %s cannot reach other hosts, and other hosts cannot reach their published ports "+
		"(the host itself still can). berth does not change another firewall's rules; unless a rule of yours accepts this traffic, %s.",
		what, b.Family, b.Table, b.Chain, bridge, do)
}

// forwardFamilies are the families whose forward hook routed traffic
// crosses, with nft's names.
var forwardFamilies = map[nftables.TableFamily]string{
	nftables.TableFamilyIPv4: "ip",
	nftables.TableFamilyIPv6: "ip6",
	nftables.TableFamilyINet: "inet",
}

// ForwardBlockers lists the base chains of other tables that drop berth's
// forwarded traffic; with ipv6 false, those of family ip6 are left out (a
// network without IPv6 has no IPv6 traffic to forward).
func (d *Dataplane) ForwardBlockers(ipv6 bool) ([]ForwardBlocker, error) {
	c, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return nil, err
	}
	defer c.CloseLasting()
	chains, err := c.ListChains()
	if err != nil {
		return nil, err
	}
	return forwardBlockers(chains, d.opts.table, d.dockerUserOn, ipv6), nil
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

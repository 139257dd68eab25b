package dataplane

import (
	"context"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestBesideDockerForwardDrop pins down what works beside a Docker engine
// that set the iptables FORWARD policy to DROP (iptables-nft: table ip
// filter, chain FORWARD, policy drop), which berth may not edit. A
// namespace of the test's own stands for the host, so the host's tables
// are not touched. A drop in any base chain of a hook is final, whatever
// berth's own chains accept, so:
//   - the host's own traffic to containers (its address, ports published
//     on 127.0.0.1 or the bridge address) never crosses FORWARD: it works;
//   - routed traffic (other hosts to published ports, containers' egress)
//     is dropped;
//   - traffic between containers on one bridge is bridged, and crosses
//     FORWARD only through br_netfilter (bridge-nf-call-iptables=1, as
//     Docker sets it): dropped with it, works without it.
const brnfSysctl = "/proc/sys/net/bridge/bridge-nf-call-iptables"

func TestBesideDockerForwardDrop(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	host := newNS(t)
	n := p.network("d", false)
	ns1, ns2, out := newNS(t), newNS(t), newNS(t)
	ports := []PortMapping{{Proto: "tcp", ContainerPort: 8000, HostPort: 18000}}
	ep1 := p.endpoint(n, ns1, "1", 2, ports...)
	ep2 := p.endpoint(n, ns2, "2", 3)
	hostOut, outAddr := netip.MustParseAddr("192.168.77.1"), netip.MustParseAddr("192.168.77.2")
	brnf := false
	err := inNS(host, func() error {
		_, err := os.Stat(brnfSysctl)
		brnf = err == nil
		// Docker's table, as iptables-nft writes it.
		c, err := nftables.New()
		if err != nil {
			return err
		}
		drop := nftables.ChainPolicyDrop
		filter := c.AddTable(&nftables.Table{Name: "filter", Family: nftables.TableFamilyIPv4})
		c.AddChain(&nftables.Chain{Name: "FORWARD", Table: filter, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &drop})
		if err := c.Flush(); err != nil {
			return err
		}
		if err := p.EnsureNetwork(ctx, n); err != nil {
			return err
		}
		for _, ep := range []Endpoint{ep1, ep2} {
			if err := p.AddEndpoint(ctx, n, ep); err != nil {
				return err
			}
		}
		// Another host, routed through this one.
		fd, err := unix.Open(out, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "up0", Flags: net.FlagUp, TxQLen: -1}, PeerName: "eth0", PeerNamespace: netlink.NsFd(fd)}
		if err := netlink.LinkAdd(veth); err != nil {
			return err
		}
		l, err := netlink.LinkByName("up0")
		if err != nil {
			return err
		}
		return netlink.AddrAdd(l, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(hostOut, 24))})
	})
	if err != nil {
		t.Fatalf("setting up the host namespace: %v", err)
	}
	if err := inNS(out, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(outAddr, 24))}); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: hostOut.AsSlice()})
	}); err != nil {
		t.Fatal(err)
	}
	serve(t, ns1, 8000)
	a1 := ep1.Addresses[0].Addr()
	gw := n.Gateways[0]

	mustReach(t, host, "tcp", ap(a1, 8000), gw.String())
	mustReach(t, host, "tcp", ap(netip.MustParseAddr("127.0.0.1"), 18000), gw.String())
	mustReach(t, host, "tcp", ap(gw, 18000), gw.String())
	mustNotReach(t, out, "tcp", ap(hostOut, 18000))
	if brnf {
		mustNotReach(t, ns2, "tcp", ap(a1, 8000))
		// Without br_netfilter's call into iptables, bridged traffic no
		// longer meets Docker's FORWARD chain.
		if err := inNS(host, func() error {
			return os.WriteFile(brnfSysctl, []byte("0"), 0o644)
		}); err != nil {
			t.Fatal(err)
		}
	} else {
		t.Log("br_netfilter is not loaded: bridged traffic never meets iptables")
	}
	mustReach(t, ns2, "tcp", ap(a1, 8000), ep2.Addresses[0].Addr().String())
	mustNotReach(t, out, "tcp", ap(hostOut, 18000))
}

package dataplane

import (
	"context"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
)

// TestPublishOnListedAddresses: the mappings internal/network makes under
// daemon.json's publish-addresses (a port of every address becomes one
// mapping per listed host address) are translated on those addresses
// only: another host reaches the listed address and not the host's other
// addresses (a second address on the same interface, the bridge's), nor
// does the host itself; a Reconcile (prune, system restore) keeps it so.
func TestPublishOnListedAddresses(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("p", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	out, listed, outAddr := outside(t, p.tag)
	// A second address of the host, on the interface the other host
	// comes in by; not listed.
	other := outAddr.Next()
	l, err := netlink.LinkByName("bo" + p.tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(other, 24))}); err != nil {
		t.Fatal(err)
	}
	loop := netip.MustParseAddr("127.0.0.1")
	// publish-addresses [listed, 127.0.0.1] and -p 80 (tcp and udp): the
	// same picked port on each listed address.
	first := reserve(t, p, []PortMapping{{Proto: "tcp", HostIP: listed, ContainerPort: 8000}})
	port := first[0].HostPort
	ports := append(first, reserve(t, p, []PortMapping{
		{Proto: "tcp", HostIP: loop, HostPort: port, ContainerPort: 8000},
		{Proto: "udp", HostIP: listed, HostPort: port, ContainerPort: 8000},
		{Proto: "udp", HostIP: loop, HostPort: port, ContainerPort: 8000},
	})...)
	ns := newNS(t)
	ep := p.endpoint(n, ns, "1", 2, ports...)
	if err := p.AddEndpoint(ctx, n, ep); err != nil {
		t.Fatal(err)
	}
	serve(t, ns, 8000)
	gw := n.Gateways[0]

	check := func(t *testing.T) {
		mustReach(t, out, "tcp", ap(listed, port), outAddr.String())
		mustReach(t, out, "udp", ap(listed, port), outAddr.String())
		mustReach(t, "", "tcp", ap(loop, port), gw.String())
		mustReach(t, "", "tcp", ap(listed, port), "")
		for _, a := range []netip.Addr{other, gw} {
			mustNotReach(t, out, "tcp", ap(a, port))
			mustNotReach(t, out, "udp", ap(a, port))
			mustNotReach(t, "", "tcp", ap(a, port))
		}
	}
	t.Run("attached", check)
	if err := p.Reconcile(ctx, []Network{n}, []Endpoint{ep}); err != nil {
		t.Fatal(err)
	}
	t.Run("after reconcile", check)
}

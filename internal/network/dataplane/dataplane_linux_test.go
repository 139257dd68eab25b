package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/errdefs"
	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
)

// reserve reserves free host ports for the mappings (HostPort 0) and
// keeps them reserved until the test ends, as a monitor would.
func reserve(t *testing.T, p *testPlane, ports []PortMapping) []PortMapping {
	t.Helper()
	c, err := p.ReservePorts(context.Background(), ports)
	if err != nil {
		t.Fatalf("ReservePorts: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return ports
}

func ap(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

// TestTraffic attaches two containers to a network and one to a second
// network and checks who reaches whom, and with which source address.
func TestTraffic(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	netA := p.network("a", false)
	netB := p.network("b", false)
	for _, n := range []Network{netA, netA, netB} { // twice: idempotent
		if err := p.EnsureNetwork(ctx, n); err != nil {
			t.Fatalf("EnsureNetwork %s: %v", n.Bridge, err)
		}
	}
	ports := reserve(t, p, []PortMapping{
		{Proto: "tcp", ContainerPort: 8000},
		{Proto: "udp", ContainerPort: 8000},
		{Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), ContainerPort: 8000},
	})
	wild, wildUDP, lo := ports[0].HostPort, ports[1].HostPort, ports[2].HostPort

	ns1, ns2, ns3 := newNS(t), newNS(t), newNS(t)
	ep1 := p.endpoint(netA, ns1, "1", 2, ports...)
	ep2 := p.endpoint(netA, ns2, "2", 3)
	ep3 := p.endpoint(netB, ns3, "3", 2)
	for _, e := range []struct {
		n  Network
		ep Endpoint
	}{{netA, ep1}, {netA, ep2}, {netB, ep3}} {
		if err := p.AddEndpoint(ctx, e.n, e.ep); err != nil {
			t.Fatalf("AddEndpoint %s: %v", e.ep.HostIfName, err)
		}
	}
	for _, ns := range []string{ns1, ns2, ns3} {
		serve(t, ns, 8000)
		serve(t, ns, 8001) // never published
	}
	out, hostOut, outAddr := outside(t, p.tag)

	a1 := ep1.Addresses[0].Addr()
	a2 := ep2.Addresses[0].Addr()
	gwA := netA.Gateways[0]
	loop := netip.MustParseAddr("127.0.0.1")

	t.Run("host to container address", func(t *testing.T) {
		mustReach(t, "", "tcp", ap(a1, 8000), gwA.String())
		mustReach(t, "", "udp", ap(a1, 8000), gwA.String())
		mustReach(t, "", "tcp", ap(a1, 8001), gwA.String())
	})
	t.Run("host to 127.0.0.1 published", func(t *testing.T) {
		// From the host's loopback the source must be rewritten: the
		// container could not answer 127.0.0.1.
		mustReach(t, "", "tcp", ap(loop, wild), gwA.String())
		mustReach(t, "", "udp", ap(loop, wildUDP), gwA.String())
		mustReach(t, "", "tcp", ap(loop, lo), gwA.String())
	})
	t.Run("host to bridge address published", func(t *testing.T) {
		mustReach(t, "", "tcp", ap(gwA, wild), gwA.String())
		mustReach(t, "", "udp", ap(gwA, wildUDP), gwA.String())
	})
	t.Run("other host keeps its source address", func(t *testing.T) {
		mustReach(t, out, "tcp", ap(hostOut, wild), outAddr.String())
		mustReach(t, out, "udp", ap(hostOut, wildUDP), outAddr.String())
		mustReach(t, out, "tcp", ap(gwA, wild), outAddr.String())
	})
	t.Run("other host cannot reach unpublished or loopback ports", func(t *testing.T) {
		// Routed straight to the container: only published ports get in.
		if err := inNS(out, func() error {
			return netlink.RouteAdd(&netlink.Route{Dst: ipNet(netA.Subnets[0]), Gw: hostOut.AsSlice()})
		}); err != nil {
			t.Fatal(err)
		}
		mustNotReach(t, out, "tcp", ap(a1, 8000))
		mustNotReach(t, out, "tcp", ap(a1, 8001))
		// The loopback-only port is not published on other addresses.
		mustNotReach(t, out, "tcp", ap(hostOut, lo))
	})
	t.Run("container to container", func(t *testing.T) {
		mustReach(t, ns2, "tcp", ap(a1, 8000), a2.String())
		mustReach(t, ns2, "udp", ap(a1, 8000), a2.String())
		mustReach(t, ns2, "tcp", ap(a1, 8001), a2.String())
	})
	t.Run("hairpin", func(t *testing.T) {
		mustReach(t, ns1, "tcp", ap(gwA, wild), gwA.String())
		mustReach(t, ns2, "tcp", ap(gwA, wild), gwA.String())
	})
	t.Run("container to the host's loopback is dropped", func(t *testing.T) {
		// route_localnet is on for the bridge; the guard chain must keep
		// containers off the host's 127.0.0.1 (here: the published port
		// would answer if it got through).
		if err := inNS(ns2, func() error {
			return netlink.RouteAdd(&netlink.Route{Dst: ipNet(netip.MustParsePrefix("127.0.0.99/32")), Gw: gwA.AsSlice()})
		}); err != nil {
			t.Fatal(err)
		}
		mustNotReach(t, ns2, "tcp", ap(netip.MustParseAddr("127.0.0.99"), lo))
	})
	t.Run("no traffic across networks", func(t *testing.T) {
		b3 := ep3.Addresses[0].Addr()
		mustNotReach(t, ns3, "tcp", ap(a1, 8000))
		mustNotReach(t, ns1, "tcp", ap(b3, 8000))
		mustNotReach(t, ns3, "udp", ap(a1, 8000))
	})
	t.Run("egress", func(t *testing.T) {
		// The outside namespace answers on 8000 too, and sees the host's
		// address: masqueraded.
		serve(t, out, 8000)
		mustReach(t, ns1, "tcp", ap(outAddr, 8000), hostOut.String())
	})

	t.Run("remove endpoint", func(t *testing.T) {
		if err := p.RemoveEndpoint(ctx, netA, ep1); err != nil {
			t.Fatal(err)
		}
		if err := p.RemoveEndpoint(ctx, netA, ep1); err != nil {
			t.Fatalf("second RemoveEndpoint: %v", err)
		}
		if linkExists(ep1.HostIfName) {
			t.Errorf("veth %s remains", ep1.HostIfName)
		}
		list := nftList(t, p.Table())
		if strings.Contains(list, a1.String()) || strings.Contains(list, ep1.ContainerID[:20]) {
			t.Errorf("rules of the removed endpoint remain:\n%s", list)
		}
		if guarded(t, p, ep1.HostIfName) {
			t.Errorf("guards of the removed endpoint remain:\n%s", nftListFamily(t, "bridge", p.Table()))
		}
		mustNotReach(t, "", "tcp", ap(loop, wild))
		// The other container is untouched.
		mustReach(t, "", "tcp", ap(a2, 8000), gwA.String())
	})
}

func TestInternalNetwork(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("i", false)
	n.Internal, n.Masquerade = true, false
	p.nets[len(p.nets)-1] = n
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	ns1, ns2 := newNS(t), newNS(t)
	// With a default route, to check the firewall and not just routing.
	ep1, ep2 := p.endpoint(n, ns1, "1", 2), p.endpoint(n, ns2, "2", 3)
	for _, ep := range []Endpoint{ep1, ep2} {
		if err := p.AddEndpoint(ctx, n, ep); err != nil {
			t.Fatal(err)
		}
	}
	out, _, outAddr := outside(t, p.tag)
	serve(t, out, 8000)
	serve(t, ns1, 8000)
	mustNotReach(t, ns1, "tcp", ap(outAddr, 8000))
	mustNotReach(t, out, "tcp", ap(ep1.Addresses[0].Addr(), 8000))
	mustReach(t, ns2, "tcp", ap(ep1.Addresses[0].Addr(), 8000), ep2.Addresses[0].Addr().String())
}

func TestIPv6(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("6", true)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	ports := reserve(t, p, []PortMapping{{Proto: "tcp", ContainerPort: 8000}})
	ns1, ns2 := newNS(t), newNS(t)
	ep1, ep2 := p.endpoint(n, ns1, "1", 2, ports...), p.endpoint(n, ns2, "2", 3)
	for _, ep := range []Endpoint{ep1, ep2} {
		if err := p.AddEndpoint(ctx, n, ep); err != nil {
			t.Fatal(err)
		}
	}
	serve(t, ns1, 8000)
	v6 := ep1.Addresses[1].Addr()
	gw6 := n.Gateways[1]
	mustReach(t, "", "tcp", ap(v6, 8000), gw6.String())
	mustReach(t, ns2, "tcp", ap(v6, 8000), ep2.Addresses[1].Addr().String())
	mustReach(t, "", "tcp", ap(gw6, ports[0].HostPort), gw6.String())
	mustReach(t, "", "tcp", ap(n.Gateways[0], ports[0].HostPort), n.Gateways[0].String())
	// [::1] cannot be translated by DNAT (IPv6 has no route_localnet):
	// the socket redirect aims such a connection at the container when
	// it is made; without it (no cgroup2 mount, TestSockRedirectFallback)
	// the reserving socket refuses it at once and clients fall back to
	// 127.0.0.1.
	if root, _ := cgroup2Root(); root != "" {
		mustReach(t, "", "tcp", ap(netip.IPv6Loopback(), ports[0].HostPort), gw6.String())
	} else if _, err := ask("", "tcp", ap(netip.IPv6Loopback(), ports[0].HostPort), reach); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("[::1]:%d: %v, want connection refused", ports[0].HostPort, err)
	}
	bad := p.endpoint(n, ns2, "b", 4, PortMapping{Proto: "tcp", HostIP: netip.IPv6Loopback(), HostPort: 1, ContainerPort: 1})
	if err := p.AddEndpoint(ctx, n, bad); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("publishing on ::1: %v, want an invalid argument", err)
	}
}

// TestAddEndpointUndo: a failed attach leaves no veth and no rule.
func TestAddEndpointUndo(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("u", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	port := PortMapping{Proto: "tcp", HostPort: 40000 + uint16(randHex(1)[0]), ContainerPort: 80}
	ns1, ns2 := newNS(t), newNS(t)
	ep1 := p.endpoint(n, ns1, "1", 2, port)
	if err := p.AddEndpoint(ctx, n, ep1); err != nil {
		t.Fatal(err)
	}
	// Same host port to another container: the DNAT map refuses it.
	ep2 := p.endpoint(n, ns2, "2", 3, port)
	err := p.AddEndpoint(ctx, n, ep2)
	if !errors.Is(err, errdefs.ErrConflict) {
		t.Fatalf("AddEndpoint of a taken port: %v, want a conflict", err)
	}
	if linkExists(ep2.HostIfName) {
		t.Errorf("veth %s remains after a failed attach", ep2.HostIfName)
	}
	if list := nftList(t, p.Table()); strings.Contains(list, ep2.Addresses[0].Addr().String()) {
		t.Errorf("rules of the failed endpoint remain:\n%s", list)
	}
	if guarded(t, p, ep2.HostIfName) {
		t.Errorf("guards of the failed endpoint remain")
	}
	// A second interface of the same name in the namespace.
	ep3 := p.endpoint(n, ns1, "3", 4)
	if err := p.AddEndpoint(ctx, n, ep3); err == nil {
		t.Fatal("AddEndpoint with a clashing eth0 succeeded")
	}
	if linkExists(ep3.HostIfName) {
		t.Errorf("veth %s remains after a failed attach", ep3.HostIfName)
	}
	if guarded(t, p, ep3.HostIfName) {
		t.Errorf("guards of the failed endpoint remain")
	}
	if !guarded(t, p, ep1.HostIfName) {
		t.Errorf("a failed attach took the guards of another endpoint")
	}
	// A restart: released, its namespace kept, attached again. The pair
	// is reused, not remade.
	before, err := netlink.LinkByName(ep1.HostIfName)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ReleaseEndpoint(ctx, n, ep1); err != nil {
		t.Fatal(err)
	}
	if err := p.AddEndpoint(ctx, n, ep1); err != nil {
		t.Fatalf("attach after release: %v", err)
	}
	if after, err := netlink.LinkByName(ep1.HostIfName); err != nil || after.Attrs().Index != before.Attrs().Index {
		t.Errorf("veth %s was remade (index %d, now %v %v)", ep1.HostIfName, before.Attrs().Index, after, err)
	}
	serve(t, ns1, 80)
	mustReach(t, "", "tcp", ap(netip.MustParseAddr("127.0.0.1"), port.HostPort), n.Gateways[0].String())
	// Release: ports go at once, the veth with its namespace.
	ns5 := newNS(t)
	ep5 := p.endpoint(n, ns5, "5", 6, PortMapping{Proto: "udp", HostPort: port.HostPort, ContainerPort: 53})
	if err := p.AddEndpoint(ctx, n, ep5); err != nil {
		t.Fatal(err)
	}
	if err := p.ReleaseEndpoint(ctx, n, ep5); err != nil {
		t.Fatal(err)
	}
	if list := nftList(t, p.Table()); strings.Contains(list, ep5.Addresses[0].Addr().String()) {
		t.Errorf("rules of the released endpoint remain:\n%s", list)
	}
	if guarded(t, p, ep5.HostIfName) {
		t.Errorf("guards of the released endpoint remain")
	}
	unmountNS(ns5)
	waitGone(t, ep5.HostIfName)
	// A namespace that is gone: removal still works.
	ep4 := p.endpoint(n, newNS(t), "4", 5)
	if err := p.AddEndpoint(ctx, n, ep4); err != nil {
		t.Fatal(err)
	}
	if err := p.RemoveEndpoint(ctx, n, ep4); err != nil {
		t.Fatal(err)
	}
	if err := p.RemoveEndpoint(ctx, n, ep4); err != nil {
		t.Fatal(err)
	}
	if guarded(t, p, ep4.HostIfName) {
		t.Errorf("guards of the removed endpoint remain")
	}
}

// TestReconcile simulates a crash: a network and an endpoint that berth no
// longer records, and a recorded endpoint whose veth vanished.
func TestReconcile(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	keep, stale := p.network("k", false), p.network("s", false)
	for _, n := range []Network{keep, stale} {
		if err := p.EnsureNetwork(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	ports := reserve(t, p, []PortMapping{{Proto: "tcp", ContainerPort: 8000}})
	staleports := reserve(t, p, []PortMapping{{Proto: "tcp", ContainerPort: 8000}})
	nsK, nsS, nsG := newNS(t), newNS(t), newNS(t)
	epK := p.endpoint(keep, nsK, "k", 2, ports...)
	epGone := p.endpoint(keep, nsG, "g", 3, staleports...) // not recorded
	epS := p.endpoint(stale, nsS, "s", 2)
	for _, e := range []struct {
		n  Network
		ep Endpoint
	}{{keep, epK}, {keep, epGone}, {stale, epS}} {
		if err := p.AddEndpoint(ctx, e.n, e.ep); err != nil {
			t.Fatal(err)
		}
	}
	serve(t, nsK, 8000)
	// epK's veth vanishes (as after a reboot its namespace would be
	// remade): Reconcile must attach it again.
	if err := p.deleteLink(epK.HostIfName); err != nil {
		t.Fatal(err)
	}
	if err := p.Reconcile(ctx, []Network{keep}, []Endpoint{epK}); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	for _, name := range []string{stale.Bridge, epS.HostIfName, epGone.HostIfName} {
		if linkExists(name) {
			t.Errorf("stale %s remains", name)
		}
	}
	list := nftList(t, p.Table())
	for _, s := range []string{stale.Bridge, epGone.Addresses[0].Addr().String()} {
		if strings.Contains(list, s) {
			t.Errorf("stale rules with %s remain:\n%s", s, list)
		}
	}
	blist := nftListFamily(t, "bridge", p.Table())
	for _, s := range []string{stale.Bridge, epGone.HostIfName, epS.HostIfName} {
		if strings.Contains(blist, s) {
			t.Errorf("stale guards with %s remain:\n%s", s, blist)
		}
	}
	if !guarded(t, p, epK.HostIfName) {
		t.Errorf("Reconcile did not restore the guards of %s", epK.HostIfName)
	}
	if !linkExists(epK.HostIfName) {
		t.Fatalf("Reconcile did not restore %s", epK.HostIfName)
	}
	mustReach(t, "", "tcp", ap(netip.MustParseAddr("127.0.0.1"), ports[0].HostPort), keep.Gateways[0].String())
	// A recorded endpoint whose container is being removed: its
	// namespace is unmounted, the mount point an ordinary file. It is
	// skipped (its removal releases it), not an error.
	dying := filepath.Join(t.TempDir(), "netns")
	if err := os.WriteFile(dying, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	epDying := p.endpoint(keep, dying, "d", 4)
	if err := p.Reconcile(ctx, []Network{keep}, []Endpoint{epK, epDying}); err != nil {
		t.Fatalf("Reconcile with an endpoint being removed: %v", err)
	}
	if linkExists(epDying.HostIfName) {
		t.Errorf("Reconcile made %s for a namespace that is gone", epDying.HostIfName)
	}
	// The whole table gone (as after a reboot; the namespace lives on
	// here): Reconcile writes it again.
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	c.DelTable(&nftables.Table{Name: p.Table(), Family: nftables.TableFamilyINet})
	c.DelTable(&nftables.Table{Name: p.Table(), Family: nftables.TableFamilyBridge})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	// A reboot takes the socket redirect's programs too.
	if err := p.RemoveSocketRedirect(ctx); err != nil {
		t.Fatal(err)
	}
	mustNotReach(t, "", "tcp", ap(netip.MustParseAddr("127.0.0.1"), ports[0].HostPort))
	if err := p.Reconcile(ctx, []Network{keep}, []Endpoint{epK}); err != nil {
		t.Fatalf("Reconcile without a table: %v", err)
	}
	mustReach(t, "", "tcp", ap(netip.MustParseAddr("127.0.0.1"), ports[0].HostPort), keep.Gateways[0].String())
	if root, _ := cgroup2Root(); root != "" {
		wantRedirectInstalled(t, p.Table())
	}
	// Reconcile again changes nothing.
	if err := p.Reconcile(ctx, []Network{keep}, []Endpoint{epK}); err != nil {
		t.Fatalf("second Reconcile: %v", err)
	}
	if got := nftList(t, p.Table()); got != list {
		t.Errorf("second Reconcile changed the ruleset:\n%s\nwas:\n%s", got, list)
	}
	if got := nftListFamily(t, "bridge", p.Table()); got != blist {
		t.Errorf("Reconcile did not restore the bridge table as it was:\n%s\nwas:\n%s", got, blist)
	}
	// And RemoveNetwork takes the rest, a veth still on the bridge too.
	if err := p.RemoveNetwork(ctx, keep); err != nil {
		t.Fatal(err)
	}
	if err := p.RemoveNetwork(ctx, keep); err != nil {
		t.Fatalf("second RemoveNetwork: %v", err)
	}
	for _, name := range []string{keep.Bridge, epK.HostIfName} {
		if linkExists(name) {
			t.Errorf("%s remains after RemoveNetwork", name)
		}
	}
	if tableExists(t, p.Table()) {
		t.Errorf("a table %s (inet or bridge) remains after its last network went", p.Table())
	}
}

func TestReservePortsConflict(t *testing.T) {
	p := newTestPlane(t)
	ctx := context.Background()
	first := reserve(t, p, []PortMapping{{Proto: "tcp", ContainerPort: 80}, {Proto: "udp", ContainerPort: 80}})
	free := []PortMapping{{Proto: "tcp", ContainerPort: 81}}
	c, err := p.ReservePorts(ctx, free)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	for _, tc := range []struct {
		name string
		pm   PortMapping
		want string
	}{
		{"tcp wildcard", PortMapping{Proto: "tcp", HostPort: first[0].HostPort, ContainerPort: 80}, "Bind for 0.0.0.0:%d failed: port is already allocated"},
		{"tcp loopback", PortMapping{Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: first[0].HostPort, ContainerPort: 80}, "Bind for 127.0.0.1:%d failed: port is already allocated"},
		{"udp wildcard", PortMapping{Proto: "udp", HostPort: first[1].HostPort, ContainerPort: 80}, "Bind for 0.0.0.0:%d failed: port is already allocated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The free port first: it must be released when the taken one fails.
			c, err := p.ReservePorts(ctx, []PortMapping{free[0], tc.pm})
			if err == nil {
				c.Close()
				t.Fatal("reserving a taken port succeeded")
			}
			var pe *PortInUseError
			if !errors.As(err, &pe) || !errors.Is(err, errdefs.ErrConflict) {
				t.Fatalf("error %v (%T), want a *PortInUseError conflict", err, err)
			}
			if want := fmt.Sprintf(tc.want, tc.pm.HostPort); err.Error() != want {
				t.Errorf("error %q, want %q", err, want)
			}
			c, err = p.ReservePorts(ctx, free)
			if err != nil {
				t.Fatalf("port %d not released after a failed reservation: %v", free[0].HostPort, err)
			}
			c.Close()
		})
	}
	// A host process holds a port: the same error.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	held := uint16(ln.Addr().(*net.TCPAddr).Port)
	if c, err := p.ReservePorts(ctx, []PortMapping{{Proto: "tcp", HostPort: held, ContainerPort: 1}}); !errors.As(err, new(*PortInUseError)) {
		if c != nil {
			c.Close()
		}
		t.Errorf("reserving port %d held by a listener: %v, want a *PortInUseError", held, err)
	}
	// And a reserved port keeps host processes off it, even those that
	// set SO_REUSEADDR (Go's net.Listen does).
	for _, addr := range []string{"127.0.0.1", "0.0.0.0"} {
		if l, err := net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(int(first[0].HostPort)))); err == nil {
			l.Close()
			t.Errorf("a host process could listen on reserved port %s:%d", addr, first[0].HostPort)
		}
	}
}

// TestConcurrentAttach: several berth processes (here Dataplanes sharing
// a table and lock directory, in goroutines) set up one network and
// attach their containers at once; all get through and see each other.
func TestConcurrentAttach(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("c", false)
	const workers = 6
	eps := make([]Endpoint, workers)
	for i := range eps {
		ports := []PortMapping{{Proto: "tcp", HostPort: uint16(43000 + i), ContainerPort: 8000}}
		eps[i] = p.endpoint(n, newNS(t), strconv.Itoa(i), i+2, ports...)
	}
	errs := make(chan error, workers)
	for i := range workers {
		go func() {
			d := New(WithTable(p.Table()), WithLockDir(p.opts.lockDir))
			if err := d.EnsureNetwork(ctx, n); err != nil {
				errs <- fmt.Errorf("worker %d: EnsureNetwork: %w", i, err)
				return
			}
			errs <- d.AddEndpoint(ctx, n, eps[i])
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		return
	}
	serve(t, eps[0].NetNSPath, 8000)
	for i := 1; i < workers; i++ {
		mustReach(t, eps[i].NetNSPath, "tcp", ap(eps[0].Addresses[0].Addr(), 8000), eps[i].Addresses[0].Addr().String())
	}
	mustReach(t, "", "tcp", ap(netip.MustParseAddr("127.0.0.1"), 43000), n.Gateways[0].String())
	if root, _ := cgroup2Root(); root != "" {
		wantRedirectInstalled(t, p.Table()) // once, not once per worker
	}
	// And all leave at once.
	for i := range workers {
		go func() { errs <- New(WithTable(p.Table()), WithLockDir(p.opts.lockDir)).RemoveEndpoint(ctx, n, eps[i]) }()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	list := nftList(t, p.Table())
	for _, ep := range eps {
		if linkExists(ep.HostIfName) || strings.Contains(list, ep.ContainerID[:20]) {
			t.Errorf("endpoint %s remains", ep.HostIfName)
		}
	}
	if root, _ := cgroup2Root(); root != "" {
		waitRedirectGone(t, p.Table())
	}
}

// TestUDPFlowFollowsThePort: a UDP client that keeps sending to a
// published port reaches the next container published there, not the
// removed one its conntrack entry pointed to.
func TestUDPFlowFollowsThePort(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("f", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	ports := reserve(t, p, []PortMapping{{Proto: "udp", ContainerPort: 8000}})
	ns1, ns2 := newNS(t), newNS(t)
	ep1, ep2 := p.endpoint(n, ns1, "1", 2, ports...), p.endpoint(n, ns2, "2", 3, ports...)
	udpName(t, ns1, 8000, "one")
	udpName(t, ns2, 8000, "two")
	client, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	to := net.UDPAddrFromAddrPort(ap(netip.MustParseAddr("127.0.0.1"), ports[0].HostPort))
	send := func() string {
		buf := make([]byte, 16)
		client.SetDeadline(time.Now().Add(reach))
		if _, err := client.WriteTo([]byte("?"), to); err != nil {
			return err.Error()
		}
		n, _, err := client.ReadFrom(buf)
		if err != nil {
			return err.Error()
		}
		return string(buf[:n])
	}
	for i, step := range []struct {
		ep   Endpoint
		want string
	}{{ep1, "one"}, {ep2, "two"}} {
		if err := p.AddEndpoint(ctx, n, step.ep); err != nil {
			t.Fatal(err)
		}
		if got := send(); got != step.want {
			t.Fatalf("step %d: answer %q, want %q", i, got, step.want)
		}
		if err := p.ReleaseEndpoint(ctx, n, step.ep); err != nil {
			t.Fatal(err)
		}
	}
}

func udpName(t *testing.T, ns string, port int, name string) {
	var pc net.PacketConn
	if err := inNS(ns, func() error {
		var err error
		pc, err = net.ListenPacket("udp", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 16)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(name), from)
		}
	}()
}

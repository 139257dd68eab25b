package dataplane

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Attacks from a hostile container (root in its namespaces, CAP_NET_RAW)
// on the host and on its neighbours through the dataplane. A namespace of
// the test's own stands for the host, so the host's routes and sysctls
// are never touched even when a test fails.

// sendRA sends an IPv6 router advertisement (router lifetime 1800 s, an
// autoconfiguration prefix 2001:db8:bad::/64) to all nodes from ifname in
// namespace ns, from a link-local address of its own.
func sendRA(ns, ifname string) error {
	return inNS(ns, func() error {
		link, err := netlink.LinkByName(ifname)
		if err != nil {
			return err
		}
		src := netip.MustParseAddr("fe80::bad")
		if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(src, 64)), Flags: unix.IFA_F_NODAD}); err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, link.Attrs().Index); err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrInet6{Addr: src.As16(), ZoneId: uint32(link.Attrs().Index)}); err != nil {
			return err
		}
		ra := make([]byte, 16+32)
		ra[0] = 134                                     // router advertisement (checksum by the kernel)
		ra[4] = 64                                      // current hop limit
		binary.BigEndian.PutUint16(ra[6:], 1800)        // router lifetime
		opt := ra[16:]                                  // prefix information
		opt[0], opt[1], opt[2], opt[3] = 3, 4, 64, 0xc0 // on-link, autonomous
		binary.BigEndian.PutUint32(opt[4:], 86400)
		binary.BigEndian.PutUint32(opt[8:], 14400)
		pfx := netip.MustParseAddr("2001:db8:bad::").As16()
		copy(opt[16:], pfx[:])
		dst := &unix.SockaddrInet6{Addr: netip.MustParseAddr("ff02::1").As16(), ZoneId: uint32(link.Attrs().Index)}
		for range 3 {
			if err := unix.Sendto(fd, ra, 0, dst); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestAttackRouterAdvertisementToHost: a container on an IPv4-only
// network sends router advertisements on its eth0. The host must not
// take a default route or an address from them (a container would
// otherwise be the host's IPv6 router, CVE-2020-13401's class).
func TestAttackRouterAdvertisementToHost(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	host := newNS(t)
	for _, v6 := range []bool{false, true} {
		letter := "a"
		if v6 {
			letter = "b"
		}
		n := p.network(letter, v6)
		ns := newNS(t)
		ep := p.endpoint(n, ns, letter, 2)
		var accept string
		err := inNS(host, func() error {
			if err := p.EnsureNetwork(ctx, n); err != nil {
				return err
			}
			if err := p.AddEndpoint(ctx, n, ep); err != nil {
				return err
			}
			b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + n.Bridge + "/accept_ra")
			accept = strings.TrimSpace(string(b))
			return err
		})
		if err != nil {
			t.Fatalf("v6=%v: setting up: %v", v6, err)
		}
		if accept != "0" {
			t.Errorf("v6=%v: bridge %s has accept_ra=%s, want 0", v6, n.Bridge, accept)
		}
		// The bridge processes RAs once its link-local address is ready
		// (after DAD, about a second).
		waitLinkLocal(t, host, n.Bridge)
		if err := sendRA(ns, "eth0"); err != nil {
			t.Fatalf("v6=%v: sending the RA: %v", v6, err)
		}
		// Absence cannot be proven by waiting; the RA is processed on
		// receipt, so a short bounded poll catches a host that takes it.
		deadline := time.Now().Add(time.Second)
		for time.Now().Before(deadline) {
			var routes []netlink.Route
			var addrs []netlink.Addr
			err := inNS(host, func() error {
				link, err := netlink.LinkByName(n.Bridge)
				if err != nil {
					return err
				}
				if routes, err = netlink.RouteList(link, unix.AF_INET6); err != nil {
					return err
				}
				addrs, err = netlink.AddrList(link, unix.AF_INET6)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range routes {
				if r.Gw != nil || (r.Dst != nil && r.Dst.IP.Equal(net.ParseIP("2001:db8:bad::"))) {
					t.Fatalf("v6=%v: the host took a route from a container's RA: %v", v6, r)
				}
			}
			for _, a := range addrs {
				if strings.HasPrefix(a.IP.String(), "2001:db8:bad:") {
					t.Fatalf("v6=%v: the host took an address from a container's RA: %v", v6, a)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// waitLinkLocal polls until link in namespace ns has a link-local IPv6
// address that is no longer tentative.
func waitLinkLocal(t *testing.T, ns, name string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ready := false
		err := inNS(ns, func() error {
			link, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			addrs, err := netlink.AddrList(link, unix.AF_INET6)
			for _, a := range addrs {
				if a.IP.IsLinkLocalUnicast() && a.Flags&unix.IFA_F_TENTATIVE == 0 {
					ready = true
				}
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if ready {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has no usable link-local address", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAttackRouterAdvertisementToNeighbour: a container sends router
// advertisements on its network; another container on it must not take
// a default route or an address from them (it would send its IPv6
// traffic through the attacker).
func TestAttackRouterAdvertisementToNeighbour(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	host := newNS(t)
	n := p.network("a", false)
	evil, victim := newNS(t), newNS(t)
	epEvil, epVictim := p.endpoint(n, evil, "e", 2), p.endpoint(n, victim, "v", 3)
	err := inNS(host, func() error {
		if err := p.EnsureNetwork(ctx, n); err != nil {
			return err
		}
		if err := p.AddEndpoint(ctx, n, epEvil); err != nil {
			return err
		}
		return p.AddEndpoint(ctx, n, epVictim)
	})
	if err != nil {
		t.Fatalf("setting up: %v", err)
	}
	waitLinkLocal(t, victim, "eth0")
	if err := sendRA(evil, "eth0"); err != nil {
		t.Fatalf("sending the RA: %v", err)
	}
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		var routes []netlink.Route
		var addrs []netlink.Addr
		err := inNS(victim, func() error {
			var err error
			if routes, err = netlink.RouteList(nil, unix.AF_INET6); err != nil {
				return err
			}
			addrs, err = netlink.AddrList(nil, unix.AF_INET6)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range routes {
			if r.Gw != nil || (r.Dst != nil && r.Dst.IP.Equal(net.ParseIP("2001:db8:bad::"))) {
				t.Fatalf("the victim took a route from its neighbour's RA: %v", r)
			}
		}
		for _, a := range addrs {
			if strings.HasPrefix(a.IP.String(), "2001:db8:bad:") {
				t.Fatalf("the victim took an address from its neighbour's RA: %v", a)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAttackInternalReachesPublishedPorts: a container on an --internal
// network connects to its gateway (a host address) at a port another
// network's container publishes. The DNAT would carry it out of its
// network; Docker drops it (its isolation chain drops whatever leaves an
// internal bridge), and so must berth.
func TestAttackInternalReachesPublishedPorts(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	in := p.network("i", false)
	in.Internal, in.Masquerade = true, false
	p.nets[len(p.nets)-1] = in
	pub := p.network("p", false)
	for _, n := range []Network{in, pub} {
		if err := p.EnsureNetwork(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	pubPorts := reserve(t, p, []PortMapping{{Proto: "tcp", ContainerPort: 8000}, {Proto: "udp", ContainerPort: 8000}})
	nsIn, nsIn2, nsPub := newNS(t), newNS(t), newNS(t)
	epIn := p.endpoint(in, nsIn, "i", 2)
	epIn2 := p.endpoint(in, nsIn2, "j", 3)
	epPub := p.endpoint(pub, nsPub, "p", 2, pubPorts...)
	for _, e := range []struct {
		n  Network
		ep Endpoint
	}{{in, epIn}, {in, epIn2}, {pub, epPub}} {
		if err := p.AddEndpoint(ctx, e.n, e.ep); err != nil {
			t.Fatal(err)
		}
	}
	serve(t, nsPub, 8000)
	serve(t, nsIn2, 8000)
	gwIn, gwPub := in.Gateways[0], pub.Gateways[0]
	for _, dst := range []netip.Addr{gwIn, gwPub} {
		mustNotReach(t, nsIn, "tcp", ap(dst, pubPorts[0].HostPort))
		mustNotReach(t, nsIn, "udp", ap(dst, pubPorts[1].HostPort))
	}
	// The host still reaches the published port; the internal network's
	// containers still reach each other.
	mustReach(t, "", "tcp", ap(gwPub, pubPorts[0].HostPort), gwPub.String())
	mustReach(t, nsIn, "tcp", ap(epIn2.Addresses[0].Addr(), 8000), epIn.Addresses[0].Addr().String())
}

// TestAttackContainerToHostLoopback: route_localnet is on for berth's
// bridges. A container that sends packets to 127.0.0.1 with the bridge's
// MAC (here: a route to 127.0.0.0/8 via the gateway, with its own
// namespace's local route removed and route_localnet on, which is what a
// crafted frame amounts to) must reach neither the host's loopback
// services nor the ports published on 127.0.0.1.
func TestAttackContainerToHostLoopback(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	host := newNS(t)
	n := p.network("l", false)
	evil := newNS(t)
	ep := p.endpoint(n, evil, "e", 2)
	err := inNS(host, func() error {
		if err := p.EnsureNetwork(ctx, n); err != nil {
			return err
		}
		return p.AddEndpoint(ctx, n, ep)
	})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, host, 8000) // the host's services, on every address incl. 127.0.0.1
	err = inNS(evil, func() error {
		lo := netip.MustParsePrefix("127.0.0.0/8")
		if err := netlink.RouteDel(&netlink.Route{Dst: ipNet(lo), Table: unix.RT_TABLE_LOCAL, Type: unix.RTN_LOCAL, Scope: netlink.SCOPE_HOST, LinkIndex: 1}); err != nil {
			return fmt.Errorf("deleting the local route: %w", err)
		}
		if err := os.WriteFile("/proc/sys/net/ipv4/conf/all/route_localnet", []byte("1"), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile("/proc/sys/net/ipv4/conf/eth0/route_localnet", []byte("1"), 0o644); err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{Dst: ipNet(lo), Gw: n.Gateways[0].AsSlice()})
	})
	if err != nil {
		t.Fatal(err)
	}
	// The host's service answers on its gateway address (the path works)
	mustReach(t, evil, "tcp", ap(n.Gateways[0], 8000), ep.Addresses[0].Addr().String())
	// ...but not on its loopback.
	// ...but not on its loopback (127.0.0.2: the namespace keeps 127.0.0.1
	// on its own lo).
	mustNotReach(t, evil, "tcp", ap(netip.MustParseAddr("127.0.0.2"), 8000))
	mustNotReach(t, evil, "udp", ap(netip.MustParseAddr("127.0.0.2"), 8000))
}

// sendGratuitousARP sends forged ARP replies from ifname in namespace ns
// to the broadcast address, claiming that ip is at the interface's MAC.
func sendGratuitousARP(ns, ifname string, ip netip.Addr) error {
	return inNS(ns, func() error {
		link, err := netlink.LinkByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		mac := link.Attrs().HardwareAddr
		frame := make([]byte, 14+28)
		copy(frame[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		copy(frame[6:12], mac)
		binary.BigEndian.PutUint16(frame[12:], unix.ETH_P_ARP)
		arp := frame[14:]
		binary.BigEndian.PutUint16(arp[0:], 1)      // Ethernet
		binary.BigEndian.PutUint16(arp[2:], 0x0800) // IPv4
		arp[4], arp[5] = 6, 4
		binary.BigEndian.PutUint16(arp[6:], 2) // reply
		a := ip.As4()
		copy(arp[8:14], mac)
		copy(arp[14:18], a[:])
		copy(arp[24:28], a[:])
		sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: link.Attrs().Index, Halen: 6}
		copy(sa.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		return unix.Sendto(fd, frame, 0, sa)
	})
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// neighMAC is the MAC of ip in the neighbour table of namespace ns ("" if
// none).
func neighMAC(t *testing.T, ns string, ip netip.Addr) string {
	t.Helper()
	var mac string
	err := inNS(ns, func() error {
		ns, err := netlink.NeighList(0, addrFamily(ip))
		for _, n := range ns {
			if n.IP.Equal(ip.AsSlice()) && n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) == 0 {
				mac = n.HardwareAddr.String()
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// TestAttackARPSpoofing: a container claims, by forged ARP, the gateway's
// address (to see its neighbours' traffic out). Its neighbours' entry for
// the gateway must not change. (Its claims of neighbours' addresses:
// TestAttackNeighbourTakeover.)
func TestAttackARPSpoofing(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	host := newNS(t)
	n := p.network("s", false)
	evil, victim := newNS(t), newNS(t)
	epEvil, epVictim := p.endpoint(n, evil, "e", 2), p.endpoint(n, victim, "v", 3)
	err := inNS(host, func() error {
		if err := p.EnsureNetwork(ctx, n); err != nil {
			return err
		}
		if err := p.AddEndpoint(ctx, n, epEvil); err != nil {
			return err
		}
		return p.AddEndpoint(ctx, n, epVictim)
	})
	if err != nil {
		t.Fatalf("setting up: %v", err)
	}
	gw, va := n.Gateways[0], epVictim.Addresses[0].Addr()
	// Traffic both ways fills both neighbour tables.
	serve(t, host, 8000)
	serve(t, victim, 8000)
	mustReach(t, victim, "tcp", ap(gw, 8000), va.String())
	mustReach(t, host, "tcp", ap(va, 8000), gw.String())
	gwMAC := neighMAC(t, victim, gw)
	if gwMAC == "" {
		t.Fatalf("no neighbour entry for the gateway")
	}
	// Linux replaces an entry only once it is a second old (locktime):
	// keep claiming for a while.
	deadline := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if err := sendGratuitousARP(evil, "eth0", gw); err != nil {
			t.Fatal(err)
		}
		if got := neighMAC(t, victim, gw); got != gwMAC {
			t.Fatalf("the victim's entry for the gateway %s is now %s (was %s)", gw, got, gwMAC)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestManyPublishedPorts: 8,000 published ports (4,000 for TCP and UDP
// each) are published and unpublished; both transactions used to exceed
// the nftables socket's limits (EMSGSIZE, ENOENT from a wrapped attribute
// length), and a container that could not be unpublished could not be
// removed ("Removal In Progress").
func TestManyPublishedPorts(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("m", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	var ports []PortMapping
	for i := range 4000 {
		for _, proto := range []string{"tcp", "udp"} {
			ports = append(ports, PortMapping{Proto: proto, HostPort: uint16(21000 + i), ContainerPort: uint16(21000 + i)})
		}
	}
	ports = reserve(t, p, ports) // below the ephemeral range: free here
	ep := p.endpoint(n, newNS(t), "m", 2, ports...)
	if err := p.AddEndpoint(ctx, n, ep); err != nil {
		t.Fatalf("AddEndpoint: %v", err)
	}
	if got := strings.Count(nftList(t, p.Table()), ep.ContainerID[:20]); got != len(ports) {
		t.Errorf("%d DNAT elements, want %d", got, len(ports))
	}
	if err := p.RemoveEndpoint(ctx, n, ep); err != nil {
		t.Fatalf("RemoveEndpoint: %v", err)
	}
	if strings.Contains(nftList(t, p.Table()), ep.ContainerID[:20]) {
		t.Errorf("elements of the removed endpoint remain")
	}
}

// TestAttackLoopbackSource: route_localnet on a bridge also stops the
// kernel from dropping packets that arrive there *from* 127.0.0.0/8. A
// container must not reach a host service as 127.0.0.1 (which services
// trust as local), e.g. a UDP service on every address.
func TestAttackLoopbackSource(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	host := newNS(t)
	n := p.network("r", false)
	evil := newNS(t)
	ep := p.endpoint(n, evil, "r", 2)
	err := inNS(host, func() error {
		if err := p.EnsureNetwork(ctx, n); err != nil {
			return err
		}
		return p.AddEndpoint(ctx, n, ep)
	})
	if err != nil {
		t.Fatal(err)
	}
	var srv *net.UDPConn
	if err := inNS(host, func() error {
		var err error
		srv, err = net.ListenUDP("udp", &net.UDPAddr{Port: 8002})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := inNS(evil, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/conf/eth0/route_localnet", []byte("1"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	gw := net.UDPAddrFromAddrPort(ap(n.Gateways[0], 8002))
	// A datagram from the container's own address arrives (the path
	// works); one from 127.0.0.1 must not. The first datagrams after the
	// link comes up may be lost (a port just added): send until one
	// arrives.
	buf := make([]byte, 64)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := inNS(evil, func() error {
			c, err := net.DialUDP("udp", nil, gw)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte("control"))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		srv.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, from, err := srv.ReadFromUDPAddrPort(buf)
		if err == nil && from.Addr().Unmap() == ep.Addresses[0].Addr() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("control datagram: from %v, %v", from, err)
		}
	}
	// As an attacker would: a raw IPv4 packet (CAP_NET_RAW) whose
	// header says 127.0.0.1.
	if err := inNS(evil, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		payload := []byte("spoofed")
		pkt := make([]byte, 20+8+len(payload))
		pkt[0], pkt[8], pkt[9] = 0x45, 64, unix.IPPROTO_UDP
		copy(pkt[12:16], []byte{127, 0, 0, 1})
		dst := n.Gateways[0].As4()
		copy(pkt[16:20], dst[:])
		binary.BigEndian.PutUint16(pkt[20:], 5353)
		binary.BigEndian.PutUint16(pkt[22:], 8002)
		binary.BigEndian.PutUint16(pkt[24:], uint16(8+len(payload)))
		copy(pkt[28:], payload)
		for range 3 {
			if err := unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: dst}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("sending from 127.0.0.1: %v", err)
	}
	srv.SetReadDeadline(time.Now().Add(time.Second))
	if k, from, err := srv.ReadFromUDPAddrPort(buf); err == nil {
		t.Fatalf("the host took %q from %v", buf[:k], from)
	}
}

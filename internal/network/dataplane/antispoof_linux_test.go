package dataplane

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Attacks on neighbour caches and addresses through the bridge (see
// antispoof.go): a container claims a neighbour container's address by
// forged ARP or NDP, sends with another's MAC or address.

// sendUnsolicitedNA sends, from ifname in namespace ns, unsolicited
// neighbour advertisements (override flag set) to all nodes claiming
// that target is at the interface's MAC.
func sendUnsolicitedNA(ns, ifname string, target netip.Addr) error {
	return inNS(ns, func() error {
		link, err := netlink.LinkByName(ifname)
		if err != nil {
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
		na := make([]byte, 24+8)
		na[0] = ndNeighborAdvert // checksum by the kernel
		na[4] = 0x20             // override
		t := target.As16()
		copy(na[8:24], t[:])
		na[24], na[25] = 2, 1 // target link-layer address
		copy(na[26:32], link.Attrs().HardwareAddr)
		dst := &unix.SockaddrInet6{Addr: netip.MustParseAddr("ff02::1").As16(), ZoneId: uint32(link.Attrs().Index)}
		return unix.Sendto(fd, na, 0, dst)
	})
}

// TestAttackNeighbourTakeover: a container claims its neighbour's
// address, by gratuitous ARP and by unsolicited NDP advertisements. The
// host's neighbour entry for the victim (through which published ports
// and the host's own connections reach it) and a third container's entry
// must keep the victim's MAC, and the host's connections must still reach
// the victim.
func TestAttackNeighbourTakeover(t *testing.T) {
	for _, tc := range []struct {
		name string
		v6   bool
	}{{"arp", false}, {"ndp", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			p := newTestPlane(t)
			host := newNS(t)
			n := p.network("n", tc.v6)
			evil, victim, peer := newNS(t), newNS(t), newNS(t)
			epEvil, epVictim, epPeer := p.endpoint(n, evil, "e", 2), p.endpoint(n, victim, "v", 3), p.endpoint(n, peer, "p", 4)
			err := inNS(host, func() error {
				if err := p.EnsureNetwork(ctx, n); err != nil {
					return err
				}
				for _, ep := range []Endpoint{epEvil, epVictim, epPeer} {
					if err := p.AddEndpoint(ctx, n, ep); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatalf("setting up: %v", err)
			}
			i := 0
			if tc.v6 {
				i = 1
			}
			va, pa, gw := epVictim.Addresses[i].Addr(), epPeer.Addresses[i].Addr(), n.Gateways[i]
			serve(t, victim, 8000)
			// Traffic fills the host's and the peer's entries for the
			// victim; the attacker's forgeries would override them.
			mustReach(t, host, "tcp", ap(va, 8000), gw.String())
			mustReach(t, peer, "tcp", ap(va, 8000), pa.String())
			want := epVictim.MAC.String()
			for _, ns := range []string{host, peer} {
				if got := neighMAC(t, ns, va); got != want {
					t.Fatalf("%s: entry for the victim %s is %q before the attack, want %s", nsName(ns), va, got, want)
				}
			}
			// Linux takes a non-gratuitous ARP reply for an entry only
			// once the entry is a second old (locktime): keep claiming.
			deadline := time.Now().Add(2500 * time.Millisecond)
			for time.Now().Before(deadline) {
				if tc.v6 {
					err = sendUnsolicitedNA(evil, "eth0", va)
				} else {
					err = sendGratuitousARP(evil, "eth0", va)
				}
				if err != nil {
					t.Fatal(err)
				}
				taken := false
				for _, who := range []struct{ name, ns string }{{"the host", host}, {"the victim's neighbour", peer}} {
					if got := neighMAC(t, who.ns, va); got != want {
						t.Errorf("%s: entry for the victim %s is now %s (the attacker's is %s), want %s", who.name, va, got, epEvil.MAC, want)
						taken = true
					}
				}
				if taken {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
			mustReach(t, host, "tcp", ap(va, 8000), gw.String())
			mustReach(t, peer, "tcp", ap(va, 8000), pa.String())
		})
	}
}

// TestAttackUnusedAddressClaim: a container claims an address of its
// network that no container has yet; the host must not take it (the
// container that gets the address next would otherwise find the host's
// traffic sent to the attacker).
func TestAttackUnusedAddressClaim(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		t.Run(fmt.Sprintf("v6=%v", v6), func(t *testing.T) {
			ctx := context.Background()
			p := newTestPlane(t)
			host := newNS(t)
			n := p.network("u", v6)
			evil := newNS(t)
			ep := p.endpoint(n, evil, "e", 2)
			err := inNS(host, func() error {
				if err := p.EnsureNetwork(ctx, n); err != nil {
					return err
				}
				return p.AddEndpoint(ctx, n, ep)
			})
			if err != nil {
				t.Fatalf("setting up: %v", err)
			}
			i := 0
			if v6 {
				i = 1
			}
			free := hostAddrs(n, 9)[i].Addr()
			// The host has an entry to take over once it has tried to
			// reach the address.
			ask(host, "udp", ap(free, 9), 100*time.Millisecond)
			for range 3 {
				if v6 {
					err = sendUnsolicitedNA(evil, "eth0", free)
				} else {
					err = sendGratuitousARP(evil, "eth0", free)
				}
				if err != nil {
					t.Fatal(err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if got := neighMAC(t, host, free); got == ep.MAC.String() {
				t.Fatalf("the host's entry for the unused %s is the attacker's MAC %s", free, got)
			}
		})
	}
}

// sendRawIP sends one UDP datagram from ns whose IP header says src,
// to dst:port, with a raw socket (CAP_NET_RAW), as an attacker would.
func sendRawIP(ns string, src, dst netip.Addr, port uint16, payload string) error {
	return inNS(ns, func() error {
		if src.Is4() {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			pkt := make([]byte, 20+8+len(payload))
			pkt[0], pkt[8], pkt[9] = 0x45, 64, unix.IPPROTO_UDP
			s, d := src.As4(), dst.As4()
			copy(pkt[12:16], s[:])
			copy(pkt[16:20], d[:])
			binary.BigEndian.PutUint16(pkt[20:], 5353)
			binary.BigEndian.PutUint16(pkt[22:], port)
			binary.BigEndian.PutUint16(pkt[24:], uint16(8+len(payload)))
			copy(pkt[28:], payload)
			return unix.Sendto(fd, pkt, 0, &unix.SockaddrInet4{Addr: d})
		}
		// IPv6 raw sockets take no header: a transparent socket may
		// bind any source address.
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.SetsockoptInt(fd, unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1); err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrInet6{Addr: src.As16(), Port: 5353}); err != nil {
			return err
		}
		return unix.Sendto(fd, []byte(payload), 0, &unix.SockaddrInet6{Addr: dst.As16(), Port: int(port)})
	})
}

// TestAttackSourceSpoofing: a container sends datagrams whose source is
// another container's address, or the gateway's. A neighbour must not
// receive them (services trusting a neighbour's address, answers sent to
// the victim); a source outside the network is let through (a container
// routing for others, as with Docker).
func TestAttackSourceSpoofing(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		t.Run(fmt.Sprintf("v6=%v", v6), func(t *testing.T) {
			ctx := context.Background()
			p := newTestPlane(t)
			host := newNS(t)
			n := p.network("i", v6)
			evil, victim, peer := newNS(t), newNS(t), newNS(t)
			epEvil, epVictim, epPeer := p.endpoint(n, evil, "e", 2), p.endpoint(n, victim, "v", 3), p.endpoint(n, peer, "p", 4)
			err := inNS(host, func() error {
				if err := p.EnsureNetwork(ctx, n); err != nil {
					return err
				}
				for _, ep := range []Endpoint{epEvil, epVictim, epPeer} {
					if err := p.AddEndpoint(ctx, n, ep); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Fatalf("setting up: %v", err)
			}
			i := 0
			if v6 {
				i = 1
			}
			own, pa := epEvil.Addresses[i].Addr(), epPeer.Addresses[i].Addr()
			foreign := netip.MustParseAddr("192.0.2.7")
			if v6 {
				foreign = netip.MustParseAddr("2001:db8::7")
			}
			var srv *net.UDPConn
			if err := inNS(peer, func() error {
				var err error
				srv, err = net.ListenUDP("udp", &net.UDPAddr{Port: 8003})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			// Resolve the peer first (refused, but resolved; the first
			// solicitation to a port that just came up may be lost,
			// hence the time for a retry).
			ask(evil, "tcp", ap(pa, 1), 5*time.Second)
			got := map[string]netip.Addr{}
			done := make(chan struct{})
			go func() {
				defer close(done)
				buf := make([]byte, 64)
				for {
					k, from, err := srv.ReadFromUDPAddrPort(buf)
					if err != nil {
						return
					}
					got[string(buf[:k])] = from.Addr().Unmap()
				}
			}()
			for range 3 {
				for name, src := range map[string]netip.Addr{"own": own, "victim": epVictim.Addresses[i].Addr(), "gateway": n.Gateways[i], "foreign": foreign} {
					if err := sendRawIP(evil, src, pa, 8003, name); err != nil {
						t.Fatalf("sending as %s: %v", name, err)
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
			srv.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			<-done
			if _, ok := got["own"]; !ok {
				t.Fatalf("the control datagram did not arrive: %v", got)
			}
			if _, ok := got["foreign"]; !ok {
				t.Errorf("a datagram from outside the network (a routed one) did not arrive: %v", got)
			}
			for _, name := range []string{"victim", "gateway"} {
				if from, ok := got[name]; ok {
					t.Errorf("the peer took a datagram from the attacker as the %s (%s)", name, from)
				}
			}
		})
	}
}

// TestAttackMACSpoofing: a container keeps sending frames with its
// neighbour's MAC as source; the bridge must not learn that MAC on the
// attacker's port, so the host's connections still reach the victim.
func TestAttackMACSpoofing(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	host := newNS(t)
	n := p.network("m", false)
	evil, victim := newNS(t), newNS(t)
	epEvil, epVictim := p.endpoint(n, evil, "e", 2), p.endpoint(n, victim, "v", 3)
	err := inNS(host, func() error {
		if err := p.EnsureNetwork(ctx, n); err != nil {
			return err
		}
		for _, ep := range []Endpoint{epEvil, epVictim} {
			if err := p.AddEndpoint(ctx, n, ep); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("setting up: %v", err)
	}
	va, gw := epVictim.Addresses[0].Addr(), n.Gateways[0]
	serve(t, victim, 8000)
	mustReach(t, host, "tcp", ap(va, 8000), gw.String())
	stop := make(chan struct{})
	sent := make(chan error, 1)
	go func() {
		sent <- inNS(evil, func() error {
			link, err := netlink.LinkByName("eth0")
			if err != nil {
				return err
			}
			fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			// A broadcast frame of a local EtherType, from the
			// victim's MAC.
			frame := make([]byte, 60)
			copy(frame[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
			copy(frame[6:12], epVictim.MAC)
			binary.BigEndian.PutUint16(frame[12:], 0x88b5)
			sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: link.Attrs().Index, Halen: 6}
			copy(sa.Addr[:], frame[0:6])
			for {
				select {
				case <-stop:
					return nil
				default:
				}
				if err := unix.Sendto(fd, frame, 0, sa); err != nil {
					return err
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}()
	time.Sleep(100 * time.Millisecond)
	var fdbPort string
	err = inNS(host, func() error {
		br, err := netlink.LinkByName(n.Bridge)
		if err != nil {
			return err
		}
		fdb, err := netlink.NeighList(br.Attrs().Index, unix.AF_BRIDGE)
		if err != nil {
			return err
		}
		for _, e := range fdb {
			if e.HardwareAddr.String() == epVictim.MAC.String() {
				l, err := netlink.LinkByIndex(e.LinkIndex)
				if err != nil {
					return err
				}
				fdbPort = l.Attrs().Name
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A new connection to the victim, while the attacker keeps sending.
	mustReach(t, host, "tcp", ap(va, 8000), gw.String())
	close(stop)
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if fdbPort != "" && fdbPort != epVictim.HostIfName {
		t.Errorf("the bridge learnt the victim's MAC on %s, want %s", fdbPort, epVictim.HostIfName)
	}
	if strings.Contains(fdbPort, epEvil.HostIfName) {
		t.Errorf("the victim's MAC is on the attacker's port")
	}
}

// sendDADProbe sends, from ifname in namespace ns, a duplicate address
// detection probe (a neighbour solicitation from ::) for target, as a
// raw frame: a socket would pick a source address.
func sendDADProbe(ns, ifname string, target netip.Addr) error {
	return inNS(ns, func() error {
		link, err := netlink.LinkByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IPV6)))
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		t := target.As16()
		dst := [16]byte{0: 0xff, 1: 0x02, 11: 1, 12: 0xff, 13: t[13], 14: t[14], 15: t[15]} // solicited-node
		frame := make([]byte, 14+40+24)
		copy(frame[0:6], []byte{0x33, 0x33, 0xff, t[13], t[14], t[15]})
		copy(frame[6:12], link.Attrs().HardwareAddr)
		binary.BigEndian.PutUint16(frame[12:], unix.ETH_P_IPV6)
		ip := frame[14:]
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], 24)
		ip[6], ip[7] = unix.IPPROTO_ICMPV6, 255
		copy(ip[24:40], dst[:]) // source :: (zero)
		ns := ip[40:]
		ns[0] = ndNeighborSolicit
		copy(ns[8:24], t[:])
		// Checksum over the pseudo-header (addresses, length, next
		// header) and the message.
		var sum uint32
		add := func(b []byte) {
			for i := 0; i+1 < len(b); i += 2 {
				sum += uint32(binary.BigEndian.Uint16(b[i:]))
			}
		}
		add(ip[8:40])
		sum += 24 + unix.IPPROTO_ICMPV6
		add(ns)
		for sum > 0xffff {
			sum = sum&0xffff + sum>>16
		}
		binary.BigEndian.PutUint16(ns[2:], ^uint16(sum))
		sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IPV6), Ifindex: link.Attrs().Index, Halen: 6}
		copy(sa.Addr[:], frame[0:6])
		return unix.Sendto(fd, frame, 0, sa)
	})
}

// TestAttackDADDenial: while a neighbour's link-local address is
// tentative (its link just came up), a container answers its duplicate
// address detection with probes of its own for that address; the
// neighbour would give the address up (DADFAILED).
func TestAttackDADDenial(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	host := newNS(t)
	n := p.network("d", true)
	evil, victim := newNS(t), newNS(t)
	epEvil, epVictim := p.endpoint(n, evil, "e", 2), p.endpoint(n, victim, "v", 3)
	err := inNS(host, func() error {
		if err := p.EnsureNetwork(ctx, n); err != nil {
			return err
		}
		for _, ep := range []Endpoint{epEvil, epVictim} {
			if err := p.AddEndpoint(ctx, n, ep); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("setting up: %v", err)
	}
	ll := linkLocal(epVictim.MAC)
	waitLinkLocal(t, evil, "eth0") // the attacker's port forwards by now
	// The victim's link goes down and up: its link-local address is
	// tentative again for a second.
	if err := inNS(victim, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetDown(l); err != nil {
			return err
		}
		return netlink.LinkSetUp(l)
	}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if err := sendDADProbe(evil, "eth0", ll); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Detection ends a second after the link came up, one way or the
	// other.
	flags := unix.IFA_F_TENTATIVE
	for end := time.Now().Add(10 * time.Second); flags&unix.IFA_F_TENTATIVE != 0 && flags&unix.IFA_F_DADFAILED == 0 && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if err := inNS(victim, func() error {
			addrs, err := netlink.AddrList(nil, unix.AF_INET6)
			for _, a := range addrs {
				if a.IP.Equal(ll.AsSlice()) {
					flags = a.Flags
				}
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if flags&(unix.IFA_F_DADFAILED|unix.IFA_F_TENTATIVE) != 0 {
		t.Fatalf("the victim's link-local address %s is not usable (flags %#x: DADFAILED is %#x)", ll, flags, unix.IFA_F_DADFAILED)
	}
}

// TestGuardTableMissing: the bridge table gone while the inet table
// stays (deleted by hand; a network an older berth set up has no chain
// there either): EnsureNetwork's quick check does not see it, and
// AddEndpoint sets the network up again instead of failing.
func TestGuardTableMissing(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("g", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	c.DelTable(&nftables.Table{Name: p.Table(), Family: nftables.TableFamilyBridge})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	ep := p.endpoint(n, newNS(t), "1", 2)
	if err := p.AddEndpoint(ctx, n, ep); err != nil {
		t.Fatalf("AddEndpoint without the bridge table: %v", err)
	}
	if !guarded(t, p, ep.HostIfName) {
		t.Errorf("the port is not guarded:\n%s", nftListFamily(t, "bridge", p.Table()))
	}
}

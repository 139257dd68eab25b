package dataplane

import (
	"context"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSockRedirectV4MappedUDP: a dual-stack AF_INET6 UDP socket (what
// Go's net.ListenPacket("udp", ":0") makes) sending to
// ::ffff:127.0.0.1:P reaches the container and gets its answers from
// 127.0.0.1:P, as through the DNAT path. The kernel hands such a
// datagram to the UDP4 sendmsg hook but its answers to the UDP6 recvmsg
// hook (as ::ffff:<container>): a redirect there would show the
// container's address as the answers' source.
func TestSockRedirectV4MappedUDP(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("m", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	loop := netip.MustParseAddr("127.0.0.1")
	ports := reserve(t, p, []PortMapping{
		{Proto: "udp", HostIP: loop, ContainerPort: 8000},
		{Proto: "udp", ContainerPort: 8000},
	})
	ns := newNS(t)
	ep := p.endpoint(n, ns, "1", 2, ports...)
	if err := p.AddEndpoint(ctx, n, ep); err != nil {
		t.Fatal(err)
	}
	defer p.ReleaseEndpoint(ctx, n, ep)
	serve(t, ns, 8000)
	wantRedirectInstalled(t, p.Table())
	for _, pm := range ports {
		to := ap(loop, pm.HostPort)
		pc, err := net.ListenPacket("udp", ":0") // dual stack
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		if la := pc.LocalAddr().(*net.UDPAddr); la.IP.To4() != nil {
			t.Fatalf("not a dual-stack socket: %s", la)
		}
		pc.SetDeadline(time.Now().Add(reach))
		mapped := netip.AddrPortFrom(netip.AddrFrom16(loop.As16()), to.Port())
		if _, err := pc.WriteTo([]byte("?"), net.UDPAddrFromAddrPort(mapped)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		_, from, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("udp to %s: %v", mapped, err)
		}
		if got := from.(*net.UDPAddr).AddrPort(); got.Addr().Unmap() != loop || got.Port() != to.Port() {
			t.Errorf("udp to %s (host %v): answer from %s, want from %s", mapped, pm.HostIP, got, mapped)
		}
	}
}

// TestSockRedirectGoesWithTable: when the table goes with the root's
// last bridge (RemoveNetwork of a network whose containers' monitors
// died without unpublishing), their DNAT elements go with it, and so
// must the redirect: left attached, it would send the host's
// connections to 127.0.0.1:P, once P is free for a host service, to a
// container address nobody holds, until the next boot.
func TestSockRedirectGoesWithTable(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("g", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	ports := reserve(t, p, []PortMapping{{Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), ContainerPort: 8000}})
	ep := p.endpoint(n, newNS(t), "1", 2, ports...)
	if err := p.AddEndpoint(ctx, n, ep); err != nil {
		t.Fatal(err)
	}
	wantRedirectInstalled(t, p.Table())
	if err := p.RemoveNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	b, err := p.newBatch()
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := p.tableExists(b); err != nil || ok {
		t.Fatalf("table still there (%v)", err)
	}
	waitRedirectGone(t, p.Table())
}

// TestSockRedirectReverseEviction (PoC, skipped unless
// BERTH_POC_EVICTION=1): any host user who sends one datagram from each
// of redirectRevEntries+ fresh sockets to a published UDP port evicts
// the reverse entries of other processes' sockets from the LRU map:
// their getpeername (TCP) and their datagrams' source (unconnected UDP)
// then show the container's address instead of 127.0.0.1:P.
func TestSockRedirectReverseEviction(t *testing.T) {
	if os.Getenv("BERTH_POC_EVICTION") == "" {
		t.Skip("proof of concept of a known limitation; BERTH_POC_EVICTION=1 runs it")
	}
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("e", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	loop := netip.MustParseAddr("127.0.0.1")
	ports := reserve(t, p, []PortMapping{
		{Proto: "tcp", HostIP: loop, ContainerPort: 8000},
		{Proto: "udp", HostIP: loop, ContainerPort: 8000},
	})
	ns := newNS(t)
	ep := p.endpoint(n, ns, "1", 2, ports...)
	if err := p.AddEndpoint(ctx, n, ep); err != nil {
		t.Fatal(err)
	}
	defer p.ReleaseEndpoint(ctx, n, ep)
	serve(t, ns, 8000)
	tcpTo, udpTo := ap(loop, ports[0].HostPort), ap(loop, ports[1].HostPort)
	c, err := net.Dial("tcp", tcpTo.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer := func() netip.AddrPort {
		var pa netip.AddrPort
		raw, _ := c.(syscall.Conn).SyscallConn()
		raw.Control(func(fd uintptr) {
			if sa, err := unix.Getpeername(int(fd)); err == nil {
				pa = sockaddrPort(sa)
			}
		})
		return pa
	}
	if got := peer(); got != tcpTo {
		t.Fatalf("before: getpeername %s, want %s", got, tcpTo)
	}
	victim, err := net.ListenPacket("udp4", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	if _, err := victim.WriteTo([]byte("?"), net.UDPAddrFromAddrPort(udpTo)); err != nil {
		t.Fatal(err)
	}
	// The flood: nothing but socket, sendto, close.
	sa := &unix.SockaddrInet4{Port: int(udpTo.Port()), Addr: loop.As4()}
	for range 2 * redirectRevEntries {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.Sendto(fd, []byte("x"), 0, sa)
		unix.Close(fd)
	}
	if got := peer(); got != tcpTo {
		t.Errorf("after the flood: getpeername %s, want %s", got, tcpTo)
	}
	victim.SetDeadline(time.Now().Add(reach))
	buf := make([]byte, 64)
	_, from, err := victim.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := from.(*net.UDPAddr).AddrPort(); got != udpTo {
		t.Errorf("after the flood: answer from %s, want from %s", got, udpTo)
	}
}

package dataplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// redirectState is what the kernel holds of a plane's socket redirect:
// the hooks its programs are attached to, and whether its maps exist.
type redirectState struct {
	hooks []string
	maps  []string
}

func redirectStateOf(t *testing.T, table string) redirectState {
	t.Helper()
	cookie, err := netnsCookie()
	if err != nil {
		t.Fatal(err)
	}
	tag, nsTag := redirectTag(table), redirectNSTag(cookie)
	root, err := cgroup2Root()
	if err != nil || root == "" {
		t.Fatalf("no cgroup2 mount (%v)", err)
	}
	cg, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(cg)
	var st redirectState
	for _, h := range redirectHooks() {
		ids, err := bpfProgQuery(cg, h.attach)
		if err != nil {
			t.Fatalf("query %s: %v", h.kind, err)
		}
		for _, id := range ids {
			fd, err := bpfGetFDByID(unix.BPF_PROG_GET_FD_BY_ID, id)
			if err != nil {
				continue
			}
			name, _, err := bpfProgInfoOf(fd)
			unix.Close(fd)
			if err == nil && name == redirectProgName(h.kind, tag) {
				st.hooks = append(st.hooks, h.kind)
			}
		}
	}
	// Every map of the system, by ID: freed maps must be gone too.
	var id uint32
	for {
		a := bpfGetIDAttr{id: id}
		if _, err := bpfCall(unix.BPF_MAP_GET_NEXT_ID, unsafe.Pointer(&a), unsafe.Sizeof(a)); err != nil {
			break
		}
		id = a.nextID
		fd, err := bpfGetFDByID(unix.BPF_MAP_GET_FD_BY_ID, id)
		if err != nil {
			continue
		}
		name, err := bpfMapNameOf(fd)
		unix.Close(fd)
		if err == nil && (name == redirectMapName(tag) || name == redirectRevName(tag, nsTag)) && !slices.Contains(st.maps, name) {
			st.maps = append(st.maps, name) // once: a freed map lingers
		}
	}
	return st
}

// waitRedirectGone polls until the plane has no program and no map left
// (the kernel frees maps after an RCU grace period).
func waitRedirectGone(t *testing.T, table string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := redirectStateOf(t, table)
		if len(st.hooks) == 0 && len(st.maps) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("socket redirect of %s still there: programs on %v, maps %v", table, st.hooks, st.maps)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func wantRedirectInstalled(t *testing.T, table string) {
	t.Helper()
	st := redirectStateOf(t, table)
	if len(st.hooks) != len(redirectHooks()) || len(st.maps) != 2 {
		t.Fatalf("socket redirect of %s: programs on %v, maps %v; want all %d hooks and 2 maps", table, st.hooks, st.maps, len(redirectHooks()))
	}
}

// withoutDNAT empties the plane's ports chain, so that only the socket
// redirect can bring a host connection to 127.0.0.1 to a container.
func withoutDNAT(t *testing.T, p *testPlane) {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	c.FlushChain(&nftables.Chain{Name: chainPorts, Table: &nftables.Table{Name: p.Table(), Family: nftables.TableFamilyINet}})
	if err := c.Flush(); err != nil {
		t.Fatalf("flushing chain %s: %v", chainPorts, err)
	}
}

// dialInfo connects from the host and returns what the client's socket
// says of itself and its peer, and the server's answer (the client
// address it saw).
func dialInfo(t *testing.T, proto string, to netip.AddrPort) (local, peer netip.AddrPort, answer string) {
	t.Helper()
	c, err := net.DialTimeout(proto, to.String(), reach)
	if err != nil {
		t.Fatalf("%s %s: %v", proto, to, err)
	}
	defer c.Close()
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	raw.Control(func(fd uintptr) {
		if sa, err := unix.Getpeername(int(fd)); err == nil {
			peer = sockaddrPort(sa)
		}
		if sa, err := unix.Getsockname(int(fd)); err == nil {
			local = sockaddrPort(sa)
		}
	})
	c.SetDeadline(time.Now().Add(reach))
	if proto == "udp" {
		c.Write([]byte("?"))
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", proto, to, err)
	}
	return local, peer, strings.TrimSpace(string(buf[:n]))
}

func sockaddrPort(sa unix.Sockaddr) netip.AddrPort {
	switch s := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(s.Addr), uint16(s.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(s.Addr), uint16(s.Port))
	}
	return netip.AddrPort{}
}

// udpUnconnected sends one datagram from an unconnected, unbound socket
// and returns the answer and the address it came from.
func udpUnconnected(t *testing.T, to netip.AddrPort) (string, netip.AddrPort) {
	t.Helper()
	network := "udp4"
	if to.Addr().Is6() {
		network = "udp6"
	}
	pc, err := net.ListenPacket(network, ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	pc.SetDeadline(time.Now().Add(reach))
	if _, err := pc.WriteTo([]byte("?"), net.UDPAddrFromAddrPort(to)); err != nil {
		t.Fatalf("udp to %s: %v", to, err)
	}
	buf := make([]byte, 64)
	n, from, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatalf("udp to %s: %v", to, err)
	}
	return strings.TrimSpace(string(buf[:n])), from.(*net.UDPAddr).AddrPort()
}

// TestSockRedirect: with the DNAT rules emptied, host connections to
// ports published on 127.0.0.1, on every address (through 127.0.0.1
// and [::1]) reach the container through the redirect alone, TCP and
// unconnected UDP; the client still sees 127.0.0.1:P ([::1]:P) as its
// peer and its datagrams' source, and the container sees the gateway,
// as through the DNAT path. Connected UDP stays on the DNAT path.
func TestSockRedirect(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("r", true)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	loop := netip.MustParseAddr("127.0.0.1")
	ports := reserve(t, p, []PortMapping{
		{Proto: "tcp", HostIP: loop, ContainerPort: 8000},
		{Proto: "udp", HostIP: loop, ContainerPort: 8000},
		{Proto: "tcp", ContainerPort: 8000},
		{Proto: "udp", ContainerPort: 8000},
	})
	ns1, ns2 := newNS(t), newNS(t)
	ep1 := p.endpoint(n, ns1, "1", 2, ports...)
	ep2 := p.endpoint(n, ns2, "2", 3)
	for _, ep := range []Endpoint{ep1, ep2} {
		if err := p.AddEndpoint(ctx, n, ep); err != nil {
			t.Fatal(err)
		}
	}
	serve(t, ns1, 8000)
	wantRedirectInstalled(t, p.Table())
	gw4, gw6 := n.Gateways[0], n.Gateways[1]
	t.Run("connected udp is left to DNAT", func(t *testing.T) {
		for _, port := range []uint16{ports[1].HostPort, ports[3].HostPort} {
			to := ap(loop, port)
			local, peer, answer := dialInfo(t, "udp", to)
			if answer != gw4.String() || peer != to || local.Addr() != loop {
				t.Errorf("udp %s: answer %q, peer %s, local %s; want %s, %s, 127.0.0.1", to, answer, peer, local, gw4, to)
			}
		}
	})
	withoutDNAT(t, p)

	for _, c := range []struct {
		name  string
		proto string
		to    netip.AddrPort
		gw    netip.Addr
	}{
		{"tcp 127.0.0.1-published", "tcp", ap(loop, ports[0].HostPort), gw4},
		{"udp 127.0.0.1-published", "udp", ap(loop, ports[1].HostPort), gw4},
		{"tcp every address via 127.0.0.1", "tcp", ap(loop, ports[2].HostPort), gw4},
		{"udp every address via 127.0.0.1", "udp", ap(loop, ports[3].HostPort), gw4},
		{"tcp every address via 127.0.0.2", "tcp", ap(netip.MustParseAddr("127.0.0.2"), ports[2].HostPort), gw4},
		{"tcp every address via [::1]", "tcp", ap(netip.IPv6Loopback(), ports[2].HostPort), gw6},
		{"udp every address via [::1]", "udp", ap(netip.IPv6Loopback(), ports[3].HostPort), gw6},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.proto == "udp" {
				answer, from := udpUnconnected(t, c.to)
				if answer != c.gw.String() || from != c.to {
					t.Errorf("answer %q from %s, want %q from %s", answer, from, c.gw, c.to)
				}
				return
			}
			local, peer, answer := dialInfo(t, c.proto, c.to)
			if answer != c.gw.String() {
				t.Errorf("container saw client %s, want the gateway %s", answer, c.gw)
			}
			if peer != c.to {
				t.Errorf("getpeername: %s, want %s", peer, c.to)
			}
			if local.Addr() != c.gw {
				t.Errorf("getsockname: %s, want an address of the gateway %s (a socket aimed at the container)", local, c.gw)
			}
		})
	}
	t.Run("127.0.0.1-published is not on 127.0.0.2", func(t *testing.T) {
		mustNotReach(t, "", "tcp", ap(netip.MustParseAddr("127.0.0.2"), ports[0].HostPort))
	})
	t.Run("a container's own loopback is its own", func(t *testing.T) {
		serveOn(t, ns2, ap(loop, ports[0].HostPort))
		mustReach(t, ns2, "tcp", ap(loop, ports[0].HostPort), "127.0.0.1")
	})
	t.Run("a socket bound to 127.0.0.1 is left to DNAT", func(t *testing.T) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}, Timeout: noReach}
		if c, err := d.Dial("tcp", ap(loop, ports[0].HostPort).String()); err == nil {
			c.Close()
			t.Errorf("reached the container from 127.0.0.1 with the DNAT rules gone")
		}
	})
}

// serveOn answers TCP on addr in the namespace with the client address.
func serveOn(t *testing.T, ns string, addr netip.AddrPort) {
	t.Helper()
	var ln net.Listener
	if err := inNS(ns, func() error {
		var err error
		ln, err = net.Listen("tcp", addr.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().String() + "\n"))
			c.Close()
		}
	}()
}

// TestSockRedirectLifecycle: the programs come with the first published
// loopback port and go, maps and all, with the last; Reconcile restores
// and removes them with the DNAT elements.
func TestSockRedirectLifecycle(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("l", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	ports1 := reserve(t, p, []PortMapping{{Proto: "tcp", ContainerPort: 8000}})
	ports2 := reserve(t, p, []PortMapping{{Proto: "udp", HostIP: netip.MustParseAddr("127.0.0.1"), ContainerPort: 8000}})
	ns1, ns2, ns3 := newNS(t), newNS(t), newNS(t)
	ep1, ep2 := p.endpoint(n, ns1, "1", 2, ports1...), p.endpoint(n, ns2, "2", 3, ports2...)
	ep3 := p.endpoint(n, ns3, "3", 4, PortMapping{Proto: "sctp", HostPort: ports1[0].HostPort, ContainerPort: 1})
	serve(t, ns1, 8000)

	// Nothing for an endpoint without TCP or UDP ports.
	if err := p.AddEndpoint(ctx, n, ep3); err != nil {
		t.Fatal(err)
	}
	waitRedirectGone(t, p.Table())
	for _, ep := range []Endpoint{ep1, ep2} {
		if err := p.AddEndpoint(ctx, n, ep); err != nil {
			t.Fatal(err)
		}
	}
	wantRedirectInstalled(t, p.Table())
	if err := p.ReleaseEndpoint(ctx, n, ep1); err != nil {
		t.Fatal(err)
	}
	wantRedirectInstalled(t, p.Table()) // ep2 still publishes
	if err := p.ReleaseEndpoint(ctx, n, ep2); err != nil {
		t.Fatal(err)
	}
	waitRedirectGone(t, p.Table())

	// Reconcile puts back what the endpoints it is given publish, and
	// the programs with it...
	if err := p.Reconcile(ctx, []Network{n}, []Endpoint{ep1, ep3}); err != nil {
		t.Fatal(err)
	}
	wantRedirectInstalled(t, p.Table())
	withoutDNAT(t, p)
	if _, peer, answer := dialInfo(t, "tcp", ap(netip.MustParseAddr("127.0.0.1"), ports1[0].HostPort)); answer != n.Gateways[0].String() || peer.Port() != ports1[0].HostPort {
		t.Errorf("after Reconcile: answer %q, peer %s", answer, peer)
	}
	// ...and removes them when none is left.
	if err := p.Reconcile(ctx, []Network{n}, []Endpoint{ep3}); err != nil {
		t.Fatal(err)
	}
	waitRedirectGone(t, p.Table())
	if err := p.RemoveEndpoint(ctx, n, ep3); err != nil {
		t.Fatal(err)
	}
}

// TestSockRedirectTwoPlanes: two berth roots (tables) have programs of
// their own; removing one's leaves the other's working.
func TestSockRedirectTwoPlanes(t *testing.T) {
	ctx := context.Background()
	p1, p2 := newTestPlane(t), newTestPlane(t)
	loop := netip.MustParseAddr("127.0.0.1")
	type side struct {
		p     *testPlane
		n     Network
		ep    Endpoint
		ports []PortMapping
	}
	var sides []side
	for i, p := range []*testPlane{p1, p2} {
		n := p.network("t", false)
		if err := p.EnsureNetwork(ctx, n); err != nil {
			t.Fatal(err)
		}
		ports := reserve(t, p, []PortMapping{{Proto: "tcp", HostIP: loop, ContainerPort: 8000}})
		ns := newNS(t)
		ep := p.endpoint(n, ns, "1", 2+i, ports...)
		if err := p.AddEndpoint(ctx, n, ep); err != nil {
			t.Fatal(err)
		}
		serve(t, ns, 8000)
		sides = append(sides, side{p, n, ep, ports})
	}
	for _, s := range sides {
		wantRedirectInstalled(t, s.p.Table())
	}
	if err := p1.ReleaseEndpoint(ctx, sides[0].n, sides[0].ep); err != nil {
		t.Fatal(err)
	}
	waitRedirectGone(t, p1.Table())
	wantRedirectInstalled(t, p2.Table())
	withoutDNAT(t, p2)
	if _, _, answer := dialInfo(t, "tcp", ap(loop, sides[1].ports[0].HostPort)); answer != sides[1].n.Gateways[0].String() {
		t.Errorf("second plane after the first's removal: answer %q", answer)
	}
	// The first plane's Reconcile with nothing leaves the second alone.
	if err := p1.Reconcile(ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	wantRedirectInstalled(t, p2.Table())
	if err := p2.ReleaseEndpoint(ctx, sides[1].n, sides[1].ep); err != nil {
		t.Fatal(err)
	}
	waitRedirectGone(t, p2.Table())
}

// TestSockRedirectFallback: without a cgroup2 mount (or with the
// redirect off) nothing is attached and the DNAT path serves 127.0.0.1
// as before: the client's socket stays on the loopback.
func TestSockRedirectFallback(t *testing.T) {
	for _, c := range []struct {
		name string
		set  func(*options)
	}{
		{"no cgroup2 mount", func(o *options) { o.cgroup2 = "/nonexistent-cgroup2" }},
		{"off", func(o *options) { o.noRedirect = true }},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			p := newTestPlane(t)
			c.set(&p.opts)
			n := p.network("f", true)
			if err := p.EnsureNetwork(ctx, n); err != nil {
				t.Fatal(err)
			}
			loop := netip.MustParseAddr("127.0.0.1")
			ports := reserve(t, p, []PortMapping{{Proto: "tcp", HostIP: loop, ContainerPort: 8000}, {Proto: "udp", ContainerPort: 8000}, {Proto: "tcp", ContainerPort: 8000}})
			ns := newNS(t)
			ep := p.endpoint(n, ns, "1", 2, ports...)
			if err := p.AddEndpoint(ctx, n, ep); err != nil {
				t.Fatal(err)
			}
			serve(t, ns, 8000)
			waitRedirectGone(t, p.Table())
			for i, proto := range []string{"tcp", "udp"} {
				to := ap(loop, ports[i].HostPort)
				local, peer, answer := dialInfo(t, proto, to)
				if answer != n.Gateways[0].String() || peer != to || local.Addr() != loop {
					t.Errorf("%s: answer %q, peer %s, local %s; want %s, %s, 127.0.0.1", proto, answer, peer, local, n.Gateways[0], to)
				}
			}
			// [::1] is not translated: the reserving socket refuses it.
			if _, err := ask("", "tcp", ap(netip.IPv6Loopback(), ports[2].HostPort), reach); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("[::1]:%d: %v, want connection refused", ports[2].HostPort, err)
			}
			if err := p.ReleaseEndpoint(ctx, n, ep); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRedirectEntries pins the translation of DNAT elements into
// redirect map entries.
func TestRedirectEntries(t *testing.T) {
	n := Network{ID: "n", Bridge: "b", Subnets: []netip.Prefix{netip.MustParsePrefix("172.30.0.0/16"), netip.MustParsePrefix("fd00::/64")}}
	ep := Endpoint{ContainerID: "c", NetworkID: "n",
		Addresses: []netip.Prefix{netip.MustParsePrefix("172.30.0.2/16"), netip.MustParsePrefix("fd00::2/64")},
		Ports: []PortMapping{
			{Proto: "tcp", HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 8080, ContainerPort: 80},
			{Proto: "udp", HostPort: 5353, ContainerPort: 53},
			{Proto: "sctp", HostPort: 9, ContainerPort: 9},
			{Proto: "tcp", HostIP: netip.MustParseAddr("192.0.2.1"), HostPort: 81, ContainerPort: 81},
			{Proto: "tcp", HostIP: netip.MustParseAddr("2001:db8::1"), HostPort: 82, ContainerPort: 82},
		}}
	els, err := endpointElements(n, ep)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range redirectEntries(els) {
		k, v := e.key, e.val
		alen := 4
		if k[1] == 6 {
			alen = 16
		}
		ka, _ := netip.AddrFromSlice(k[8 : 8+alen])
		va, _ := netip.AddrFromSlice(v[8 : 8+alen])
		got = append(got, strings.Join([]string{
			protoName(k[0]), ap(ka, uint16(k[2])<<8|uint16(k[3])).String(), "->", ap(va, uint16(v[2])<<8|uint16(v[3])).String(),
		}, " "))
	}
	want := []string{
		"tcp 127.0.0.1:8080 -> 172.30.0.2:80",
		"udp 0.0.0.0:5353 -> 172.30.0.2:53",
		"udp [::]:5353 -> [fd00::2]:53",
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func protoName(p byte) string {
	switch p {
	case unix.IPPROTO_TCP:
		return "tcp"
	case unix.IPPROTO_UDP:
		return "udp"
	}
	return "?"
}

// TestSockRedirectUDPFollowsThePort: an unbound UDP client of the host
// that keeps its socket reaches the next container published on the
// port, connected (DNAT, whose flow is forgotten) or not (the redirect
// looks each datagram up), as TestUDPFlowFollowsThePort checks for a
// client bound to 127.0.0.1.
func TestSockRedirectUDPFollowsThePort(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("u", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	ports := reserve(t, p, []PortMapping{{Proto: "udp", ContainerPort: 8000}})
	ns1, ns2 := newNS(t), newNS(t)
	ep1, ep2 := p.endpoint(n, ns1, "1", 2, ports...), p.endpoint(n, ns2, "2", 3, ports...)
	udpName(t, ns1, 8000, "one")
	udpName(t, ns2, 8000, "two")
	to := ap(netip.MustParseAddr("127.0.0.1"), ports[0].HostPort)
	unconnected, err := net.ListenPacket("udp4", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer unconnected.Close()
	var connected net.Conn // made once the port is published, as a redirect would catch it
	ask := func(c net.Conn, pc net.PacketConn) string {
		buf := make([]byte, 16)
		var n int
		var err error
		if c != nil {
			c.SetDeadline(time.Now().Add(reach))
			if _, err = c.Write([]byte("?")); err == nil {
				n, err = c.Read(buf)
			}
		} else {
			pc.SetDeadline(time.Now().Add(reach))
			if _, err = pc.WriteTo([]byte("?"), net.UDPAddrFromAddrPort(to)); err == nil {
				n, _, err = pc.ReadFrom(buf)
			}
		}
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
		if connected == nil {
			if connected, err = net.Dial("udp", to.String()); err != nil {
				t.Fatal(err)
			}
			defer connected.Close()
		}
		if got := ask(connected, nil); got != step.want {
			t.Errorf("step %d, connected: answer %q, want %q", i, got, step.want)
		}
		if got := ask(nil, unconnected); got != step.want {
			t.Errorf("step %d, unconnected: answer %q, want %q", i, got, step.want)
		}
		if err := p.ReleaseEndpoint(ctx, n, step.ep); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSockRedirectWithoutBPF: a berth process that may not use bpf(2)
// (a seccomp filter, a user namespace) publishes through DNAT alone and
// unpublishes and reconciles without error.
func TestSockRedirectWithoutBPF(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("w", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	loop := netip.MustParseAddr("127.0.0.1")
	ports := reserve(t, p, []PortMapping{{Proto: "tcp", HostIP: loop, ContainerPort: 8000}})
	ns := newNS(t)
	ep := p.endpoint(n, ns, "1", 2, ports...)
	serve(t, ns, 8000)
	withoutBPF(t, func() error { return p.AddEndpoint(ctx, n, ep) })
	waitRedirectGone(t, p.Table())
	to := ap(loop, ports[0].HostPort)
	if local, _, answer := dialInfo(t, "tcp", to); answer != n.Gateways[0].String() || local.Addr() != loop {
		t.Errorf("answer %q, local %s; want %s through DNAT (local 127.0.0.1)", answer, local, n.Gateways[0])
	}
	withoutBPF(t, func() error { return p.ReleaseEndpoint(ctx, n, ep) })
	withoutBPF(t, func() error { return p.Reconcile(ctx, []Network{n}, nil) })
}

// withoutBPF runs fn on a thread of its own whose seccomp filter fails
// bpf(2) with EPERM; the thread is discarded after (its goroutine ends
// locked to it, and Go makes no thread from a locked one).
func withoutBPF(t *testing.T, fn func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		filter := []unix.SockFilter{
			{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
			{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, K: unix.SYS_BPF, Jt: 0, Jf: 1},
			{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
			{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
		}
		prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			errc <- err
			return
		}
		if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)), 0, 0); err != nil {
			errc <- err
			return
		}
		if _, err := bpfProgQuery(-1, unix.BPF_CGROUP_INET4_CONNECT); !errors.Is(err, unix.EPERM) {
			errc <- fmt.Errorf("bpf(2) under the filter: %v, want EPERM", err)
			return
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestSockRedirectStaleSwept: a root whose table went without its
// containers being removed (its directory deleted, its table deleted by
// hand) leaves programs whose entries would send the host's connections
// wherever the routes lead, off the host included. Any other plane's
// Reconcile detaches them; a live plane's stay.
func TestSockRedirectStaleSwept(t *testing.T) {
	ctx := context.Background()
	gone, live := newTestPlane(t), newTestPlane(t)
	for _, p := range []*testPlane{gone, live} {
		n := p.network("x", false)
		if err := p.EnsureNetwork(ctx, n); err != nil {
			t.Fatal(err)
		}
		ports := reserve(t, p, []PortMapping{{Proto: "tcp", ContainerPort: 8000}})
		if err := p.AddEndpoint(ctx, n, p.endpoint(n, newNS(t), "x", 2, ports...)); err != nil {
			t.Fatal(err)
		}
		wantRedirectInstalled(t, p.Table())
	}
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	c.DelTable(&nftables.Table{Name: gone.Table(), Family: nftables.TableFamilyINet})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	other := newTestPlane(t)
	if err := other.Reconcile(ctx, nil, nil); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	if n, err := gone.SocketRedirectPrograms(); err != nil || n != 0 {
		t.Errorf("the programs of a plane whose table is gone: %d (%v), want none", n, err)
	}
	wantRedirectInstalled(t, live.Table())
}

// A Reconcile of a root that publishes nothing makes no redirect lock
// file: the file would outlive the table whenever that goes without
// berth (a root deleted by hand), as nothing else would delete it.
func TestReconcileNothingPublishedMakesNoRedirectLock(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("q", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	ep := p.endpoint(n, newNS(t), "q", 2)
	if err := p.AddEndpoint(ctx, n, ep); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := p.Reconcile(ctx, []Network{n}, []Endpoint{ep}); err != nil {
			t.Fatalf("Reconcile: %v", err)
		}
	}
	if _, err := os.Stat(p.redirectLockPath()); !os.IsNotExist(err) {
		t.Errorf("redirect lock file %s made for a root that publishes nothing (%v)", p.redirectLockPath(), err)
	}
}

package dataplane

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
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
	if ok, err := p.tableExists(b, nftables.TableFamilyINet); err != nil || ok {
		t.Fatalf("table still there (%v)", err)
	}
	waitRedirectGone(t, p.Table())
}

// TestSockRedirectReverseEviction: any host user who sent one datagram
// from each of 2^15 fresh sockets to a published UDP port evicted the
// reverse entries of other processes' sockets from what was a shared
// LRU map (16384 entries): their getpeername (TCP) and their datagrams'
// source (unconnected UDP) then showed the container's address instead
// of 127.0.0.1:P. The originals now live in each socket's own storage.
func TestSockRedirectReverseEviction(t *testing.T) {
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
	for range 1 << 15 {
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

// TestSockRedirectOneSocketSeveralPorts: one unconnected UDP socket
// talking to ports of two containers at once gets each answer from the
// address it sent to.
func TestSockRedirectOneSocketSeveralPorts(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("s", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	loop := netip.MustParseAddr("127.0.0.1")
	var tos []netip.AddrPort
	for i := range 2 {
		ports := reserve(t, p, []PortMapping{{Proto: "udp", HostIP: loop, ContainerPort: 8000}})
		ns := newNS(t)
		ep := p.endpoint(n, ns, string(rune('1'+i)), 2+i, ports...)
		if err := p.AddEndpoint(ctx, n, ep); err != nil {
			t.Fatal(err)
		}
		defer p.ReleaseEndpoint(ctx, n, ep)
		serve(t, ns, 8000)
		tos = append(tos, ap(loop, ports[0].HostPort))
	}
	withoutDNAT(t, p)
	pc, err := net.ListenPacket("udp4", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	buf := make([]byte, 64)
	for round := range 3 {
		// Both sent before either answer is read: each socket keeps
		// more than its last destination.
		for _, to := range tos {
			if _, err := pc.WriteTo([]byte("?"), net.UDPAddrFromAddrPort(to)); err != nil {
				t.Fatal(err)
			}
		}
		seen := map[netip.AddrPort]bool{}
		for range tos {
			pc.SetDeadline(time.Now().Add(reach))
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			seen[from.(*net.UDPAddr).AddrPort()] = true
		}
		for _, to := range tos {
			if !seen[to] {
				t.Errorf("round %d: answers from %v, want one from each of %v", round, seen, tos)
			}
		}
	}
}

// revSlotOf is the programs' slot for a container address and port.
func revSlotOf(a netip.Addr, port uint16) int {
	b := a.AsSlice()
	w := uint64(binary.LittleEndian.Uint32(b[len(b)-4:]))
	var pb [2]byte
	binary.BigEndian.PutUint16(pb[:], port)
	x := w ^ uint64(binary.LittleEndian.Uint16(pb[:]))
	x ^= x >> 16
	x ^= x >> 8
	return int(x & (revSlots - 1))
}

// TestSockRedirectSlotTaken: when a socket's slot for a second
// destination holds a first one, the datagram to the second takes the
// DNAT path; both answers come from the addresses sent to.
func TestSockRedirectSlotTaken(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("c", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	loop := netip.MustParseAddr("127.0.0.1")
	a1, a2 := hostAddrs(n, 2)[0].Addr(), hostAddrs(n, 3)[0].Addr()
	cport2 := 8001
	for revSlotOf(a2, uint16(cport2)) != revSlotOf(a1, 8000) {
		cport2++
	}
	var tos []netip.AddrPort
	for i, cport := range []int{8000, cport2} {
		ports := reserve(t, p, []PortMapping{{Proto: "udp", HostIP: loop, ContainerPort: uint16(cport)}})
		ns := newNS(t)
		ep := p.endpoint(n, ns, string(rune('1'+i)), 2+i, ports...)
		if err := p.AddEndpoint(ctx, n, ep); err != nil {
			t.Fatal(err)
		}
		defer p.ReleaseEndpoint(ctx, n, ep)
		serve(t, ns, cport)
		tos = append(tos, ap(loop, ports[0].HostPort))
	}
	pc, err := net.ListenPacket("udp4", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	buf := make([]byte, 64)
	for _, to := range tos {
		if _, err := pc.WriteTo([]byte("?"), net.UDPAddrFromAddrPort(to)); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[netip.AddrPort]bool{}
	for range tos {
		pc.SetDeadline(time.Now().Add(reach))
		_, from, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		seen[from.(*net.UDPAddr).AddrPort()] = true
	}
	for _, to := range tos {
		if !seen[to] {
			t.Errorf("answers from %v, want one from each of %v", seen, tos)
		}
	}
}

// TestSockRedirectConnectedUDPSendto: a connected UDP socket that
// names its peer again in sendto (allowed, and what some C clients do)
// gets its answers: redirected, they would come from the container's
// address, which the socket, connected to 127.0.0.1:P, drops. (Its
// connect gave it the source 127.0.0.1, which keeps it on DNAT.)
func TestSockRedirectConnectedUDPSendto(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("k", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	loop := netip.MustParseAddr("127.0.0.1")
	ports := reserve(t, p, []PortMapping{{Proto: "udp", HostIP: loop, ContainerPort: 8000}})
	ns := newNS(t)
	ep := p.endpoint(n, ns, "1", 2, ports...)
	if err := p.AddEndpoint(ctx, n, ep); err != nil {
		t.Fatal(err)
	}
	defer p.ReleaseEndpoint(ctx, n, ep)
	serve(t, ns, 8000)
	wantRedirectInstalled(t, p.Table())
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	to := &unix.SockaddrInet4{Port: int(ports[0].HostPort), Addr: loop.As4()}
	if err := unix.Connect(fd, to); err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval(reach.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	if err := unix.Sendto(fd, []byte("?"), 0, to); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if _, err := unix.Read(fd, buf); err != nil {
		t.Errorf("no answer to a connected socket's sendto: %v", err)
	}
}

// TestSockRedirectRefusedByTheKernel: when the kernel refuses the
// programs (here another program attached exclusively where they go; an
// older kernel without a helper they use), Reconcile still succeeds and
// the DNAT path serves, as AddEndpoint does: the redirect is best
// effort everywhere. Before, Reconcile failed every time (and so did
// the sweeps and restores built on it).
func TestSockRedirectRefusedByTheKernel(t *testing.T) {
	ctx := context.Background()
	root, err := cgroup2Root()
	if err != nil || root == "" {
		t.Fatalf("no cgroup2 mount (%v)", err)
	}
	cgDir := filepath.Join(root, "berth-test-"+randHex(8))
	if err := os.Mkdir(cgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(cgDir) })
	cg, err := unix.Open(cgDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(cg)
	// An exclusive program (no BPF_F_ALLOW_MULTI) on one of the hooks.
	a := &bpfAsm{}
	a.movImm(r0, 1)
	a.exit()
	code, err := a.bytes()
	if err != nil {
		t.Fatal(err)
	}
	prog, err := bpfProgLoad(unix.BPF_PROG_TYPE_CGROUP_SOCK_ADDR, unix.BPF_CGROUP_INET4_GETPEERNAME, "bsrtest", code)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(prog)
	if err := bpfProgAttach(cg, prog, unix.BPF_CGROUP_INET4_GETPEERNAME, 0); err != nil {
		t.Fatal(err)
	}
	defer bpfProgDetach(cg, prog, unix.BPF_CGROUP_INET4_GETPEERNAME)

	p := newTestPlane(t)
	p.opts.cgroup2 = cgDir
	n := p.network("q", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	loop := netip.MustParseAddr("127.0.0.1")
	ports := reserve(t, p, []PortMapping{{Proto: "tcp", HostIP: loop, ContainerPort: 8000}})
	ns := newNS(t)
	ep := p.endpoint(n, ns, "1", 2, ports...)
	if err := p.AddEndpoint(ctx, n, ep); err != nil {
		t.Fatal(err)
	}
	serve(t, ns, 8000)
	if err := p.Reconcile(ctx, []Network{n}, []Endpoint{ep}); err != nil {
		t.Errorf("Reconcile with the programs refused: %v", err)
	}
	for _, h := range redirectHooks() {
		ids, err := bpfProgQuery(cg, h.attach)
		if err != nil {
			t.Fatal(err)
		}
		if h.attach != unix.BPF_CGROUP_INET4_GETPEERNAME && len(ids) > 0 {
			t.Errorf("programs left on %s: %v", h.kind, ids)
		}
	}
	mustReach(t, "", "tcp", ap(loop, ports[0].HostPort), n.Gateways[0].String())
	if err := p.ReleaseEndpoint(ctx, n, ep); err != nil {
		t.Fatal(err)
	}
}

// TestSockRedirectHalfInstalled: a process killed while attaching (some
// hooks have the programs, the maps exist) leaves nothing that the
// next publication does not complete, nor that the last unpublication
// does not remove.
func TestSockRedirectHalfInstalled(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("h", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	loop := netip.MustParseAddr("127.0.0.1")
	ports1 := reserve(t, p, []PortMapping{{Proto: "tcp", HostIP: loop, ContainerPort: 8000}})
	ports2 := reserve(t, p, []PortMapping{{Proto: "tcp", HostIP: loop, ContainerPort: 8000}})
	ns1, ns2 := newNS(t), newNS(t)
	ep1, ep2 := p.endpoint(n, ns1, "1", 2, ports1...), p.endpoint(n, ns2, "2", 3, ports2...)
	if err := p.AddEndpoint(ctx, n, ep1); err != nil {
		t.Fatal(err)
	}
	serve(t, ns1, 8000)
	serve(t, ns2, 8000)
	// The crash: the last hooks' programs never got attached.
	rp, unlock, err := p.openRedirect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]uint32{}
	for _, h := range redirectHooks() {
		kinds[h.kind] = h.attach
	}
	for _, kind := range []string{"r4", "p4", "p6"} {
		if err := bpfProgDetach(rp.cg, rp.progs[kind], kinds[kind]); err != nil {
			t.Fatal(err)
		}
	}
	unlock()
	if st := redirectStateOf(t, p.Table()); len(st.hooks) != len(redirectHooks())-3 {
		t.Fatalf("programs on %v after the simulated crash", st.hooks)
	}
	if err := p.AddEndpoint(ctx, n, ep2); err != nil {
		t.Fatal(err)
	}
	wantRedirectInstalled(t, p.Table())
	withoutDNAT(t, p)
	for _, pm := range []PortMapping{ports1[0], ports2[0]} {
		to := ap(loop, pm.HostPort)
		if _, peer, answer := dialInfo(t, "tcp", to); answer != n.Gateways[0].String() || peer != to {
			t.Errorf("%s: answer %q, peer %s", to, answer, peer)
		}
	}
	for _, ep := range []Endpoint{ep1, ep2} {
		if err := p.ReleaseEndpoint(ctx, n, ep); err != nil {
			t.Fatal(err)
		}
	}
	waitRedirectGone(t, p.Table())
}

// TestSockRedirectConcurrentFirstPublications: several first
// publications at once (separate Dataplanes, as separate monitors
// are) attach each program once: no hook runs a plane's program twice.
func TestSockRedirectConcurrentFirstPublications(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("w", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	loop := netip.MustParseAddr("127.0.0.1")
	var eps []Endpoint
	for i := range 6 {
		ports := reserve(t, p, []PortMapping{{Proto: "tcp", HostIP: loop, ContainerPort: 8000}, {Proto: "udp", ContainerPort: 8000}})
		eps = append(eps, p.endpoint(n, newNS(t), string(rune('a'+i)), 2+i, ports...))
	}
	errs := make(chan error, len(eps))
	for _, ep := range eps {
		go func() {
			d := New(WithTable(p.Table()), WithLockDir(p.opts.lockDir))
			errs <- d.AddEndpoint(ctx, n, ep)
		}()
	}
	for range eps {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	wantRedirectInstalled(t, p.Table())
	for _, ep := range eps {
		if err := p.ReleaseEndpoint(ctx, n, ep); err != nil {
			t.Fatal(err)
		}
	}
	waitRedirectGone(t, p.Table())
}

// TestSockRedirectV4MappedTCP: a dual-stack TCP socket connecting to
// ::ffff:127.0.0.1:P reaches the container (through DNAT: the kernel
// runs no v4 connect hook for it) and sees the address it dialled.
func TestSockRedirectV4MappedTCP(t *testing.T) {
	ctx := context.Background()
	p := newTestPlane(t)
	n := p.network("j", false)
	if err := p.EnsureNetwork(ctx, n); err != nil {
		t.Fatal(err)
	}
	loop := netip.MustParseAddr("127.0.0.1")
	ports := reserve(t, p, []PortMapping{{Proto: "tcp", HostIP: loop, ContainerPort: 8000}, {Proto: "tcp", ContainerPort: 8000}})
	ns := newNS(t)
	ep := p.endpoint(n, ns, "1", 2, ports...)
	if err := p.AddEndpoint(ctx, n, ep); err != nil {
		t.Fatal(err)
	}
	defer p.ReleaseEndpoint(ctx, n, ep)
	serve(t, ns, 8000)
	wantRedirectInstalled(t, p.Table())
	for _, pm := range ports {
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		tv := unix.NsecToTimeval(reach.Nanoseconds())
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		to := &unix.SockaddrInet6{Port: int(pm.HostPort), Addr: netip.AddrFrom16(loop.As16()).As16()}
		if err := unix.Connect(fd, to); err != nil {
			t.Fatalf("connect [::ffff:127.0.0.1]:%d: %v", pm.HostPort, err)
		}
		sa, err := unix.Getpeername(fd)
		if err != nil {
			t.Fatal(err)
		}
		want := netip.AddrPortFrom(netip.AddrFrom16(loop.As16()), pm.HostPort)
		if got := sockaddrPort(sa); got != want {
			t.Errorf("getpeername %s, want %s", got, want)
		}
		buf := make([]byte, 64)
		if _, err := unix.Read(fd, buf); err != nil {
			t.Errorf("[::ffff:127.0.0.1]:%d: no answer: %v", pm.HostPort, err)
		}
	}
}

package dataplane

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testutil"
	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// testPlane is a Dataplane with a table and link names of its own; its
// cleanup deletes them even when the test fails.
type testPlane struct {
	*Dataplane
	t    testing.TB
	tag  string // unique, 6 hex digits
	nets []Network
}

func newTestPlane(t testing.TB) *testPlane {
	t.Helper()
	testutil.RequiresRoot(t)
	tag := randHex(6)
	p := &testPlane{Dataplane: New(WithTable("bt"+tag), WithLockDir(t.TempDir())), t: t, tag: tag}
	t.Cleanup(func() {
		if err := p.RemoveSocketRedirect(context.Background()); err != nil {
			t.Errorf("removing the socket redirect: %v", err)
		}
		if err := p.RemoveDockerUserRules(); err != nil {
			t.Errorf("removing the rules in DOCKER-USER: %v", err)
		}
		for _, n := range p.nets {
			if l, err := netlink.LinkByName(n.Bridge); err == nil {
				netlink.LinkDel(l)
			}
		}
		c, err := nftables.New()
		if err == nil {
			c.DelTable(&nftables.Table{Name: p.Table(), Family: nftables.TableFamilyINet})
			c.Flush()
			c.DelTable(&nftables.Table{Name: p.Table(), Family: nftables.TableFamilyBridge})
			c.Flush()
		}
	})
	return p
}

// network makes a network on a fresh 10.x.y.0/24 (and an IPv6 /64 when
// v6) without creating it in the kernel.
func (p *testPlane) network(letter string, v6 bool) Network {
	b := make([]byte, 2)
	rand.Read(b)
	sub := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 200 + b[0]%50, b[1], 0}), 24)
	n := Network{
		ID: p.tag + letter + randHex(16), Bridge: "bt" + p.tag + letter, Masquerade: true, ICC: true,
		Subnets: []netip.Prefix{sub}, Gateways: []netip.Addr{sub.Addr().Next()},
	}
	if v6 {
		s6 := netip.MustParsePrefix(fmt.Sprintf("fd00:%x:%x::/64", b[0], b[1]))
		n.Subnets = append(n.Subnets, s6)
		n.Gateways = append(n.Gateways, s6.Addr().Next())
	}
	p.nets = append(p.nets, n)
	return n
}

// host returns the n-th host address of the network's subnets (n >= 2),
// with their prefix lengths.
func hostAddrs(n Network, i int) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range n.Subnets {
		a := s.Addr()
		for range i {
			a = a.Next()
		}
		out = append(out, netip.PrefixFrom(a, s.Bits()))
	}
	return out
}

func (p *testPlane) endpoint(n Network, ns, name string, i int, ports ...PortMapping) Endpoint {
	mac := net.HardwareAddr{2, 0x42, 0, 0, 0, byte(i)}
	rand.Read(mac[2:5])
	return Endpoint{
		ContainerID: p.tag + name + randHex(20), NetworkID: n.ID, NetNSPath: ns, IfName: "eth0",
		HostIfName: "bv" + p.tag + name, MAC: mac, Addresses: hostAddrs(n, i), Gateways: n.Gateways, Ports: ports,
	}
}

// newNS makes a network namespace with lo up; cleanup unmounts it.
func newNS(t testing.TB) string { return testutil.NewNetNS(t) }

// inNS runs fn on a thread in the namespace at path ("" = the host's).
// Sockets made in fn stay in that namespace.
func inNS(path string, fn func() error) error { return testutil.InNetNS(path, fn) }

// serve answers on TCP and UDP port in the namespace with the address
// the client came from.
func serve(t testing.TB, ns string, port int) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	err := inNS(ns, func() error {
		var err error
		if ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port)); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", fmt.Sprintf(":%d", port))
		return err
	})
	if err != nil {
		t.Fatalf("serve in %s: %v", ns, err)
	}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ip := c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
			fmt.Fprintf(c, "%s\n", ip)
			c.Close()
		}
	}()
	go func() {
		buf := make([]byte, 64)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			ip := from.(*net.UDPAddr).AddrPort().Addr().Unmap()
			pc.WriteTo([]byte(ip.String()+"\n"), from)
		}
	}()
}

// ask connects from namespace ns ("" = host) to addr and returns the
// client address the server saw.
func ask(ns, proto string, addr netip.AddrPort, timeout time.Duration) (string, error) {
	var got string
	err := inNS(ns, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		var d net.Dialer
		c, err := d.DialContext(ctx, proto, addr.String())
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		if proto == "udp" {
			if _, err := c.Write([]byte("?")); err != nil {
				return err
			}
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		got = strings.TrimSpace(line)
		return err
	})
	return got, err
}

const (
	reach   = 3 * time.Second
	noReach = 600 * time.Millisecond // a dropped connection: no answer within this is expected
)

func mustReach(t *testing.T, ns, proto string, addr netip.AddrPort, wantSrc string) {
	t.Helper()
	got, err := ask(ns, proto, addr, reach)
	if err != nil {
		t.Errorf("%s %s from %q: %v", proto, addr, nsName(ns), err)
		return
	}
	if wantSrc != "" && got != wantSrc {
		t.Errorf("%s %s from %q: server saw client %s, want %s", proto, addr, nsName(ns), got, wantSrc)
	}
}

func mustNotReach(t *testing.T, ns, proto string, addr netip.AddrPort) {
	t.Helper()
	if got, err := ask(ns, proto, addr, noReach); err == nil {
		t.Errorf("%s %s from %q reached the server (client seen as %s), want no traffic", proto, addr, nsName(ns), got)
	}
}

func nsName(ns string) string {
	if ns == "" {
		return "host"
	}
	return ns
}

func nftList(t *testing.T, table string) string { t.Helper(); return nftListFamily(t, "inet", table) }

func nftListFamily(t *testing.T, family, table string) string {
	t.Helper()
	nft := testutil.RequiresBinary(t, "nft")
	out, err := exec.Command(nft, "list", "table", family, table).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list table %s %s: %v\n%s", family, table, err, out)
	}
	return string(out)
}

// guarded says whether berth's bridge table has elements of the port
// (antispoof.go).
func guarded(t *testing.T, p *testPlane, port string) bool {
	t.Helper()
	b, err := p.newBatch()
	if err != nil {
		t.Fatal(err)
	}
	els, err := b.portGuards(port)
	if err != nil {
		t.Fatalf("listing the guards of %s: %v", port, err)
	}
	return len(els) > 0
}

func linkExists(name string) bool {
	_, err := netlink.LinkByName(name)
	return err == nil
}

// outside makes a namespace that stands for another host: a veth pair to
// the host (not on any bridge), 192.168.X.2 inside and .1 on the host,
// a default route to the host.
func outside(t *testing.T, tag string) (ns string, hostAddr, nsAddr netip.Addr) {
	t.Helper()
	ns = newNS(t)
	b := make([]byte, 1)
	rand.Read(b)
	hostAddr = netip.AddrFrom4([4]byte{192, 168, 100 + b[0]%100, 1})
	nsAddr = hostAddr.Next()
	fd, err := unix.Open(ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	name := "bo" + tag
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, Flags: net.FlagUp, TxQLen: -1}, PeerName: "eth0", PeerNamespace: netlink.NsFd(fd)}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("outside veth: %v", err)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(name); err == nil {
			netlink.LinkDel(l)
		}
	})
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(hostAddr, 24))}); err != nil {
		t.Fatal(err)
	}
	err = inNS(ns, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(nsAddr, 24))}); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: hostAddr.AsSlice()})
	})
	if err != nil {
		t.Fatalf("outside namespace: %v", err)
	}
	return ns, hostAddr, nsAddr
}

func unmountNS(path string) { unix.Unmount(path, unix.MNT_DETACH) }

// waitGone polls until the link is gone (the kernel deletes a dead
// namespace's devices in the background).
func waitGone(t testing.TB, name string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for linkExists(name) {
		if time.Now().After(deadline) {
			t.Fatalf("%s still exists 10s after its namespace went", name)
		}
		time.Sleep(time.Millisecond)
	}
}

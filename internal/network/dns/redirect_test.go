package dns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/network/dataplane"
	"github.com/berth-dev/berth/internal/testutil"
)

// inNetNS runs fn on a thread inside the namespace at nsPath; sockets fn
// opens stay there.
func inNetNS(t testing.TB, nsPath string, fn func() error) error {
	t.Helper()
	return testutil.InNetNS(nsPath, fn)
}

// ipTables are the names of the ip tables inside the namespace.
func ipTables(t testing.TB, nsPath string) []string {
	t.Helper()
	f, err := os.Open(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tb := range tables {
		names = append(names, tb.Name)
	}
	return names
}

// ownServer stands for a DNS server of the container's own: it listens on
// port 53 of every address (UDP and TCP) inside the namespace and answers
// "own" to anything.
func ownServer(t *testing.T, nsPath string) {
	t.Helper()
	var pc *net.UDPConn
	var ln *net.TCPListener
	err := inNetNS(t, nsPath, func() error {
		var err error
		if pc, err = net.ListenUDP("udp", &net.UDPAddr{Port: 53}); err != nil {
			return err
		}
		ln, err = net.ListenTCP("tcp", &net.TCPAddr{Port: 53})
		return err
	})
	if err != nil {
		t.Fatalf("a container's own server on port 53 of 0.0.0.0 beside the embedded one: %v", err)
	}
	t.Cleanup(func() { pc.Close(); ln.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			_, from, err := pc.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			pc.WriteToUDPAddrPort([]byte("own"), from)
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("own"))
			c.Close()
		}
	}()
}

// ownNAT stands for NAT rules of the container's own (an empty nat
// chain): with it the kernel keeps applying the NAT of connections
// conntrack knows even once the redirect's table is gone.
func ownNAT(t *testing.T, nsPath string) {
	t.Helper()
	f, err := os.Open(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	tb := c.AddTable(&nftables.Table{Name: "own", Family: nftables.TableFamilyIPv4})
	accept := nftables.ChainPolicyAccept
	c.AddChain(&nftables.Chain{Name: "out", Table: tb, Type: nftables.ChainTypeNAT, Hooknum: nftables.ChainHookOutput,
		Priority: nftables.ChainPriorityNATDest, Policy: &accept})
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestRedirectedServer: with Config.Redirect the server listens on
// ports of the kernel's choosing and the dataplane's redirect has a
// resolver in the namespace (a raw socket, Go's resolver, busybox's
// nslookup) reach it at 127.0.0.11:53 over UDP and TCP, replies coming
// from port 53, while a process of the container listens
// on port 53 of every address and gets its own traffic (and has NAT
// rules of its own). A restart on the
// same ports and on others keeps answering (also a client keeping its
// UDP source port); after Close and RemoveDNSRedirect no table is left,
// and 127.0.0.11:53 is no longer translated. No thread is left in the
// namespace.
func TestRedirectedServer(t *testing.T) {
	ctx := context.Background()
	busybox := testutil.RequiresBinary(t, "busybox")
	nsPath := newNetNS(t)
	tag := make([]byte, 3)
	rand.Read(tag)
	dp := dataplane.New(dataplane.WithTable("bt"+hex.EncodeToString(tag)), dataplane.WithLockDir(t.TempDir()))
	reg := OpenRegistry(filepath.Join(t.TempDir(), "dns"))
	web := netip.MustParseAddr("10.0.0.2")
	addEntries(t, reg, Entry{Network: "n1", ContainerID: "c1", Names: []string{"web"}, IPv4: web})
	hostNS, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var s *Server
	t.Cleanup(func() {
		if s != nil {
			s.Close()
		}
	})
	start := func(ports Ports) {
		t.Helper()
		if s != nil {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = nil
		}
		var err error
		if s, err = Start(ctx, Config{NetNSPath: nsPath, Networks: []string{"n1"}, Redirect: dp, Ports: ports}, reg); err != nil {
			t.Fatal(err)
		}
		if p := s.Ports(); p.UDP == 53 || p.UDP == 0 || p.TCP == 53 || p.TCP == 0 {
			t.Fatalf("ports %+v, want ports of the kernel's choosing", p)
		}
		if nses := threadNetNSes(t); len(nses) != 1 || nses[hostNS] == nil {
			t.Fatalf("threads outside the host's network namespace %s: %v", hostNS, nses)
		}
	}
	start(Ports{})
	ownServer(t, nsPath)
	ownNAT(t, nsPath)

	// One client socket for the whole test: it keeps its source port,
	// so conntrack would keep sending it to a former server's port.
	var client *net.UDPConn
	if err := inNetNS(t, nsPath, func() (err error) {
		client, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server := netip.MustParseAddrPort(ServerIP + ":53")
	// askUDP sends a query from the client socket to at and returns the
	// reply and where it came from.
	askUDP := func(at netip.AddrPort, id uint16) ([]byte, netip.AddrPort, error) {
		client.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := client.WriteToUDPAddrPort(buildQuery(t, id, "web.", dnsmessage.TypeA, nil), at); err != nil {
			return nil, netip.AddrPort{}, err
		}
		buf := make([]byte, maxMsgSize)
		n, from, err := client.ReadFromUDPAddrPort(buf)
		return buf[:n], from, err
	}
	check := func(round string) {
		t.Helper()
		// UDP: the answer comes from 127.0.0.11:53.
		raw, from, err := askUDP(server, 1)
		if err != nil {
			t.Fatalf("%s: UDP query to %s: %v", round, server, err)
		}
		if from != server {
			t.Errorf("%s: UDP reply from %s, want %s", round, from, server)
		}
		if r := parseReply(t, raw); !slices.Equal(r.addrs, []netip.Addr{web}) {
			t.Errorf("%s: UDP: %+v", round, r)
		}
		// TCP: the connection is to (and so from) 127.0.0.11:53.
		c, err := dialIn(t, nsPath, "tcp", server.String())
		if err != nil {
			t.Fatalf("%s: TCP: %v", round, err)
		}
		if got := c.RemoteAddr().(*net.TCPAddr).AddrPort(); got != server {
			t.Errorf("%s: TCP peer %s", round, got)
		}
		if r := parseReply(t, exchangeTCP(t, c, buildQuery(t, 2, "web.", dnsmessage.TypeA, nil))); !slices.Equal(r.addrs, []netip.Addr{web}) {
			t.Errorf("%s: TCP: %+v", round, r)
		}
		c.Close()
		// Go's resolver over its connected UDP socket (a reply from any
		// other port would not reach it).
		res := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialIn(t, nsPath, network, server.String())
		}}
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if got, err := res.LookupNetIP(lctx, "ip4", "web."); err != nil || !slices.Equal(got, []netip.Addr{web}) {
			t.Errorf("%s: Go resolver: %v %v", round, got, err)
		}
		// busybox's nslookup, as in a container (its UDP socket is
		// connected too).
		var out []byte
		err = inNetNS(t, nsPath, func() (err error) {
			out, err = exec.Command(busybox, "nslookup", "web.", ServerIP).CombinedOutput()
			return err
		})
		if err != nil || !strings.Contains(string(out), "Address: "+web.String()) {
			t.Errorf("%s: busybox nslookup: %v\n%s", round, err, out)
		}
		// The container's own server gets what is not for 127.0.0.11.
		if raw, _, err := askUDP(netip.MustParseAddrPort("127.0.0.1:53"), 3); err != nil || string(raw) != "own" {
			t.Errorf("%s: UDP 127.0.0.1:53: %q %v", round, raw, err)
		}
		if c, err := dialIn(t, nsPath, "tcp", "127.0.0.1:53"); err != nil {
			t.Errorf("%s: TCP 127.0.0.1:53: %v", round, err)
		} else {
			buf := make([]byte, 8)
			c.SetDeadline(time.Now().Add(5 * time.Second))
			n, _ := c.Read(buf)
			c.Close()
			if string(buf[:n]) != "own" {
				t.Errorf("%s: TCP 127.0.0.1:53: %q", round, buf[:n])
			}
		}
	}
	check("first start")
	first := s.Ports()

	start(first)
	if s.Ports() != first {
		t.Fatalf("restart on the former ports %+v got %+v", first, s.Ports())
	}
	check("restart on the same ports")

	// Hold the former ports so that the restart cannot have them.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = nil
	var hold []interface{ Close() error }
	if err := inNetNS(t, nsPath, func() error {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ServerIP), Port: int(first.UDP)})
		if err != nil {
			return err
		}
		hold = append(hold, u)
		l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.ParseIP(ServerIP), Port: int(first.TCP)})
		if err != nil {
			return err
		}
		hold = append(hold, l)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	start(first)
	for _, h := range hold {
		h.Close()
	}
	if p := s.Ports(); p.UDP == first.UDP || p.TCP == first.TCP {
		t.Fatalf("restart got the held ports: %+v", p)
	}
	check("restart on other ports")

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = nil
	if err := dp.RemoveDNSRedirect(ctx, nsPath); err != nil {
		t.Fatal(err)
	}
	if names := ipTables(t, nsPath); !slices.Equal(names, []string{"own"}) {
		t.Fatalf("tables left in the namespace: %v", names)
	}
	// Nothing is translated any more, for the client that kept its
	// port either: 127.0.0.11:53 is the container's own server.
	if raw, _, err := askUDP(server, 4); err != nil || string(raw) != "own" {
		t.Fatalf("UDP 127.0.0.11:53 after the redirect's removal: %q %v", raw, err)
	}
	if nses := threadNetNSes(t); len(nses) != 1 || nses[hostNS] == nil {
		t.Fatalf("threads outside the host's network namespace %s: %v", hostNS, nses)
	}
}

type failingRedirect struct{ ports Ports }

func (f *failingRedirect) RedirectDNS(_ context.Context, _ string, udp, tcp uint16) error {
	f.ports = Ports{udp, tcp}
	return errors.New("no redirect")
}

// TestRedirectFailure: when the redirect cannot be installed, Start
// fails and its sockets are closed.
func TestRedirectFailure(t *testing.T) {
	nsPath := newNetNS(t)
	f := &failingRedirect{}
	if s, err := Start(context.Background(), Config{NetNSPath: nsPath, Redirect: f}, OpenRegistry(t.TempDir())); err == nil {
		s.Close()
		t.Fatal("Start succeeded")
	}
	if f.ports.UDP == 0 || f.ports.TCP == 0 {
		t.Fatalf("the redirect was asked for %+v", f.ports)
	}
	if err := inNetNS(t, nsPath, func() error {
		u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(ServerIP), Port: int(f.ports.UDP)})
		if err != nil {
			return err
		}
		u.Close()
		l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.ParseIP(ServerIP), Port: int(f.ports.TCP)})
		if err != nil {
			return err
		}
		return l.Close()
	}); err != nil {
		t.Fatalf("the failed server's ports are still taken: %v", err)
	}
}

// BenchmarkStart: Start and Close of a server in a new namespace, binding
// 127.0.0.11:53 itself ("port53") and with the dataplane's redirect
// ("redirect"); the namespace's making is not timed.
//
//	go test -run '^$' -bench Start -benchtime 200x ./internal/network/dns/
func BenchmarkStart(b *testing.B) {
	tag := make([]byte, 3)
	rand.Read(tag)
	dp := dataplane.New(dataplane.WithTable("bt"+hex.EncodeToString(tag)), dataplane.WithLockDir(b.TempDir()))
	reg := OpenRegistry(b.TempDir())
	for _, bc := range []struct {
		name string
		r    Redirector
	}{{"port53", nil}, {"redirect", dp}} {
		b.Run(bc.name, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				nsPath := newNetNS(b)
				b.StartTimer()
				s, err := Start(context.Background(), Config{NetNSPath: nsPath, Redirect: bc.r}, reg)
				if err != nil {
					b.Fatal(err)
				}
				s.Close()
				b.StopTimer()
				unix.Unmount(nsPath, unix.MNT_DETACH)
				b.StartTimer()
			}
		})
	}
}

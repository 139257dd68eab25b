package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/testutil"
)

// newNetNS makes a network namespace with its loopback up, bind-mounted
// under the test's temporary directory, and removes it at the end.
func newNetNS(t testing.TB) string { return testutil.NewNetNS(t) }

// dialIn connects to addr from inside the namespace at nsPath: the socket
// is made there by a thread that goes back at once.
func dialIn(t testing.TB, nsPath, network, addr string) (net.Conn, error) {
	t.Helper()
	var c net.Conn
	err := testutil.InNetNS(nsPath, func() error {
		var err error
		c, err = net.DialTimeout(network, addr, 10*time.Second)
		return err
	})
	if c != nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// threadNetNSes lists the network namespace of every thread of this
// process.
func threadNetNSes(t testing.TB) map[string][]string {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, task := range tasks {
		ns, err := os.Readlink(filepath.Join("/proc/self/task", task.Name(), "ns/net"))
		if err != nil {
			continue // the thread ended meanwhile
		}
		out[ns] = append(out[ns], task.Name())
	}
	return out
}

// TestServerInNetNS: Start serves 127.0.0.11:53 inside a namespace of the
// test's own, answers local names there and forwards the others from the
// host's namespace (the fake upstream listens on the host's loopback,
// which the namespace cannot reach); no thread is left in the namespace;
// after Close nothing listens there.
func TestServerInNetNS(t *testing.T) {
	nsPath := newNetNS(t)
	u := startUpstream(t, answer)
	reg := OpenRegistry(filepath.Join(t.TempDir(), "dns"))
	addEntries(t, reg,
		Entry{Network: "n1", ContainerID: "c1", Names: []string{"web", "alias"}, IPv4: netip.MustParseAddr("10.0.0.2")},
		Entry{Network: "n2", ContainerID: "c2", Names: []string{"other"}, IPv4: netip.MustParseAddr("10.1.0.2")},
	)
	hostNS, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(context.Background(), Config{NetNSPath: nsPath, Networks: []string{"n1"}, Upstream: []netip.AddrPort{u.addr}}, reg)
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			s.Close()
		}
	})
	if nses := threadNetNSes(t); len(nses) != 1 || nses[hostNS] == nil {
		t.Fatalf("threads outside the host's network namespace %s: %v", hostNS, nses)
	}
	// The host's namespace cannot reach the upstream through the
	// namespace: show that the namespace cannot reach it at all.
	if c, err := dialIn(t, nsPath, "tcp", u.addr.String()); err == nil {
		c.Close()
		t.Fatal("the namespace reaches the host's loopback; the forwarding test would prove nothing")
	}
	server := net.JoinHostPort(ServerIP, "53")
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			c, err := dialIn(t, nsPath, network, server)
			if err != nil {
				t.Fatal(err)
			}
			ask := func(id uint16, name string) parsed {
				q := buildQuery(t, id, name, dnsmessage.TypeA, nil)
				if network == "tcp" {
					return parseReply(t, exchangeTCP(t, c, q))
				}
				return parseReply(t, exchangeUDP(t, c, q))
			}
			if r := ask(1, "web."); !slices.Equal(r.addrs, []netip.Addr{netip.MustParseAddr("10.0.0.2")}) {
				t.Fatalf("web: %+v", r)
			}
			if r := ask(2, "example.com."); r.header.RCode != dnsmessage.RCodeSuccess || !slices.Equal(r.addrs, []netip.Addr{netip.MustParseAddr("192.0.2.1")}) {
				t.Fatalf("forwarded example.com: %+v", r)
			}
			// A container on another network is not seen, until the
			// server is told of a connect.
			before := len(u.queries())
			if r := ask(3, "other."); len(r.addrs) != 1 || r.addrs[0] != netip.MustParseAddr("192.0.2.1") || len(u.queries()) != before+1 {
				t.Fatalf("other (not on n2): %+v", r)
			}
			s.SetNetworks([]string{"n1", "n2"})
			defer s.SetNetworks([]string{"n1"})
			if r := ask(4, "other."); !slices.Equal(r.addrs, []netip.Addr{netip.MustParseAddr("10.1.0.2")}) {
				t.Fatalf("other after connect: %+v", r)
			}
		})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	// Nothing listens any more: TCP is refused, a UDP query draws an
	// ICMP port unreachable, and the address can be bound again.
	if c, err := dialIn(t, nsPath, "tcp", server); !errors.Is(err, unix.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("TCP after Close: %v", err)
	}
	c, err := dialIn(t, nsPath, "udp", server)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write(buildQuery(t, 9, "web.", dnsmessage.TypeA, nil))
	if _, err := c.Read(make([]byte, 512)); !errors.Is(err, unix.ECONNREFUSED) {
		t.Fatalf("UDP after Close: %v", err)
	}
	s2, err := Start(context.Background(), Config{NetNSPath: nsPath}, reg)
	if err != nil {
		t.Fatalf("the address is still taken after Close: %v", err)
	}
	s2.Close()
}

// TestStartFailsCleanly: a namespace where the address is taken (by
// another server) gives an error and leaves no thread in the namespace.
func TestStartFailsCleanly(t *testing.T) {
	hostNS, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	reg := OpenRegistry(t.TempDir())
	up := newNetNS(t)
	s, err := Start(context.Background(), Config{NetNSPath: up}, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s2, err := Start(context.Background(), Config{NetNSPath: up}, reg); !errors.Is(err, unix.EADDRINUSE) {
		if s2 != nil {
			s2.Close()
		}
		t.Fatalf("a second server in one namespace: %v", err)
	}
	if nses := threadNetNSes(t); len(nses) != 1 || nses[hostNS] == nil {
		t.Fatalf("threads outside the host's network namespace %s: %v", hostNS, nses)
	}
}

func TestStartRejects(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	for _, p := range []string{file, filepath.Join(t.TempDir(), "missing")} {
		if s, err := Start(context.Background(), Config{NetNSPath: p}, OpenRegistry(t.TempDir())); err == nil {
			s.Close()
			t.Errorf("Start in %s succeeded", p)
		}
	}
}

// BenchmarkLookup: one query of a container name answered through the
// server's UDP socket, with 100 containers on the network (the
// "loopback" case on the host's loopback, "netns" through 127.0.0.11
// inside a namespace). The median of the single lookups is reported as
// median-ns/op beside Go's mean.
func BenchmarkLookup(b *testing.B) {
	setup := func(b *testing.B) *Registry {
		reg := OpenRegistry(b.TempDir())
		for i := range 100 {
			addEntries(b, reg, Entry{Network: "n", ContainerID: fmt.Sprintf("%064d", i), Names: []string{fmt.Sprintf("c%d", i), fmt.Sprintf("%012d", i)},
				IPv4: netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 2)})})
		}
		return reg
	}
	run := func(b *testing.B, c net.Conn) {
		q := buildQuery(b, 1, "c42.", dnsmessage.TypeA, nil)
		buf := make([]byte, 512)
		times := make([]time.Duration, 0, b.N)
		c.SetDeadline(time.Now().Add(time.Minute))
		b.ResetTimer()
		for b.Loop() {
			start := time.Now()
			if _, err := c.Write(q); err != nil {
				b.Fatal(err)
			}
			n, err := c.Read(buf)
			if err != nil {
				b.Fatal(err)
			}
			times = append(times, time.Since(start))
			if n < 28 {
				b.Fatalf("short reply %x", buf[:n])
			}
		}
		b.StopTimer()
		sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
		b.ReportMetric(float64(times[len(times)/2].Nanoseconds()), "median-ns/op")
	}
	b.Run("loopback", func(b *testing.B) {
		_, at := testServer(b, setup(b), []string{"n"}, nil, time.Second)
		run(b, dial(b, "udp", at))
	})
	b.Run("netns", func(b *testing.B) {
		nsPath := newNetNS(b)
		s, err := Start(context.Background(), Config{NetNSPath: nsPath, Networks: []string{"n"}}, setup(b))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		c, err := dialIn(b, nsPath, "udp", net.JoinHostPort(ServerIP, "53"))
		if err != nil {
			b.Fatal(err)
		}
		run(b, c)
	})
}
